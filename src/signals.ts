// What the browser and the embedding page say, read fresh each time we ask: the consent gate
// (3-consent-gate.ts) weighs these; this file only reads them.

export interface Signals {
  /** Global Privacy Control or Do Not Track is on. */
  privacySignal: boolean;
  /** The browser is driven by automation (WebDriver, Playwright, headless bots). */
  automation: boolean;
  /** The embedding page says `<meta name="rerun-analytics" content="off">`. */
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

function embedderForbids(): boolean {
  const doc = globalThis.document as Document | undefined;
  const content = doc?.querySelector?.('meta[name="rerun-analytics"]')?.getAttribute('content');
  return typeof content === 'string' && /^\s*(off|none|false|0|disabled?)\s*$/i.test(content);
}
