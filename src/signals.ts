// What the browser and the embedding page say, read fresh each time we ask: the consent gate
// (3-consent-gate.ts) weighs these; this file only reads them.
import { embedderForbids } from './embedder.js';

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
