// What the browser and the embedding page say, read fresh each time we ask: the consent gate
// (3-consent-gate.ts) weighs these; this file only reads them.

export interface Signals {
  /** Global Privacy Control or Do Not Track is on. */
  privacySignal: boolean;
  /** The browser is driven by automation (WebDriver, Playwright, headless bots). */
  automation: boolean;
  /** The embedding page has a `<meta name="rerun-analytics">` that does not explicitly allow analytics. */
  embedderForbids: boolean;
}

export function readSignals(): Signals {
  const nav = globalThis.navigator as (Navigator & { globalPrivacyControl?: boolean; msDoNotTrack?: string }) | undefined;
  const dnt = nav?.doNotTrack ?? (globalThis as { doNotTrack?: string }).doNotTrack ?? nav?.msDoNotTrack;
  return {
    privacySignal: nav?.globalPrivacyControl === true || dnt === '1' || dnt === 'yes',
    automation: nav?.webdriver === true,
    embedderForbids: embedderForbids(),
  };
}

/**
 * The embedding page's policy, `<meta name="rerun-analytics" content="…">`. Fail closed: once
 * such a tag exists, analytics is allowed only if every one of them explicitly allows it
 * (content "allow", "on", "yes", "true" or "enabled"); any other content, a missing content,
 * or one "off" tag among allowing ones keeps it off.
 */
function embedderForbids(): boolean {
  const doc = globalThis.document as Document | undefined;
  const tags = doc?.querySelectorAll?.('meta[name="rerun-analytics" i]');
  if (!tags) return false;
  for (const tag of tags) {
    if (!/^\s*(allow|on|yes|true|enabled)\s*$/i.test(tag.getAttribute('content') ?? '')) return true;
  }
  return false;
}
