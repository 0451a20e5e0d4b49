// Why analytics is on or off, in plain words, per reason: what the settings toggle says under
// its checkbox. A module of its own, so that a host showing these texts does not pull in the
// toggle's drawing (toggle-view.ts, a chunk fetched when the first toggle is shown).
import type { Reason } from './3-consent-gate.js';

/** What the line under the checkbox says, per reason. */
export const REASON_TEXT: Record<Reason, string> = {
  loading: 'Loading your choice…',
  default: 'On. Anonymous and minimal; you can turn it off at any time.',
  'user-opted-in': 'On, because you turned it on.',
  'user-opted-out': 'Off, because you turned it off.',
  'privacy-signal': 'Off, because your browser asks sites not to track you (Global Privacy Control or Do Not Track). Turning it on here overrides that.',
  automation: 'Off: this browser is controlled by automation.',
  'dev-build': 'Off in development builds.',
  'embedder-policy': 'Off: the page embedding the viewer does not allow analytics.',
  'storage-unavailable': 'Off: this browser cannot store your choice, so nothing is sent.',
  'not-a-browser': 'Off: not running in a browser.',
};
