// Stage 3 — the consent gate. The one rule that decides whether anything may leave.
//
// It is a pure function of everything we know, so it can be called at the exact moment of
// hand-over (decide/consent.ts asks it at every step of the core) and gives the same
// answer to the toggle, to config() and to the audit. Keep every consent decision here.

/** Why the module is on or off. The README lists them for users. */
export type Reason =
  | 'loading' //              the stored choice is not read yet: events are held, not sent
  | 'user-opted-in' //        the user enabled it explicitly
  | 'user-opted-out' //       the user disabled it
  | 'default' //              never chosen, nothing forbids it
  | 'privacy-signal' //       Global Privacy Control or Do Not Track, and the user never chose
  | 'automation' //           navigator.webdriver (tests, bots) without `force`
  | 'dev-build' //            the host says it is a dev build, without `force`
  | 'embedder-policy' //      the embedding page forbids analytics
  | 'storage-unavailable' // the stored choice cannot be read: when unsure, send nothing
  | 'not-a-browser'; //       server-side rendering, Node: the module is inert

export interface ConsentFacts {
  /** What IndexedDB says the user chose; 'loading' until read, 'unreadable' if it failed. */
  stored: 'enabled' | 'disabled' | 'unset' | 'loading' | 'unreadable';
  embedderForbids: boolean;
  privacySignal: boolean;
  automation: boolean;
  devBuild: boolean;
  force: boolean;
}

export interface ConsentState {
  enabled: boolean;
  reason: Reason;
}

/**
 * The gate. Precedence, first match wins:
 * embedder policy > unreadable storage > still loading > user opt-out >
 * automation / dev build (unless forced) > user opt-in > privacy signal > default on.
 * `force` never beats an opt-out or an embedder policy; an explicit opt-in beats a privacy
 * signal (the user said so), but not automation or a dev build (those are about the host).
 */
export function decide(f: ConsentFacts): ConsentState {
  if (f.embedderForbids) return off('embedder-policy');
  if (f.stored === 'unreadable') return off('storage-unavailable');
  if (f.stored === 'loading') return off('loading');
  if (f.stored === 'disabled') return off('user-opted-out');
  if (f.automation && !f.force) return off('automation');
  if (f.devBuild && !f.force) return off('dev-build');
  if (f.stored === 'enabled') return { enabled: true, reason: 'user-opted-in' };
  if (f.privacySignal) return off('privacy-signal');
  return { enabled: true, reason: 'default' };
}

/**
 * Off because the user wishes so (an opt-out, a privacy signal): what waits is dropped. Any
 * other "off" is about this page (its embedder, automation, a dev build) or about not knowing
 * (storage): what waits stays in the shared outbox for a page that may send it.
 */
export function userSaidNo(state: ConsentState): boolean {
  return !state.enabled && (state.reason === 'user-opted-out' || state.reason === 'privacy-signal');
}

function off(reason: Reason): ConsentState {
  return { enabled: false, reason };
}
