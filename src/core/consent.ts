// Consent in the pure core: what the user chose, as this tab knows it from storage, from other tabs
// and from its own host, and the gate (3-consent-gate.ts) asked over it.
// Rules:
// - A storage result is the truth, with this tab's own changes not yet stored applied over it,
//   except that it never turns on what an opt-out heard from another tab turned off.
// - The host's changes apply in memory at once and are stored in order, each retried until it is.
// - An opt-out or a clear ends everything recorded before it, at once, here; stored, it bumps the
//   cut, so that no tab sends what was recorded before it, now or later.
// - A message can only turn a tab off (at once), or make it read storage again.
import { decide, userSaidNo, type ConsentState } from '../3-consent-gate.js';
import { applyChange, type ConfigChange, type StorageOp, type StorageResult, type StoredConfig } from './contract.js';
import { abortFlight, dropHeld, dropRef, endAll, unconfirmed } from './outcomes.js';
import { arm, backoff } from './timers.js';
import type { Announce, Change, Step } from './types.js';

/** An opt-out or clear waits at most this long for other tabs' requests in flight to end (they hear it and abort). */
export const SETTLE_MS = 3000;
/** …looking again this often. */
const SETTLE_POLL_MS = 50;

/** The gate's answer now. */
export function gate(c: Pick<Step, 'st' | 'signals'>): ConsentState {
  const { st, signals } = c;
  return decide({
    stored: storedFact(c),
    embedderForbids: st.s.embedderPolicyOff || signals.embedderForbids,
    privacySignal: st.s.respectPrivacySignals && signals.privacySignal,
    automation: signals.automation,
    devBuild: st.s.devBuild,
    force: st.s.force,
  });
}

function storedFact({ st }: Pick<Step, 'st'>) {
  const { known, config } = st.consent;
  if (known.k === 'unreadable') return 'unreadable';
  if (config.choice === 'disabled') return 'disabled'; // an opt-out known in any way applies, read or not
  if (known.k === 'unread' || (known.k === 'reread' && known.hold)) return 'loading';
  return config.choice;
}

/** Something needs storage read again before this tab trusts what it knows (`hold`: and sends nothing meanwhile). */
export function reread(c: Step, hold: boolean): void {
  const { consent } = c.st;
  if (consent.known.k === 'unreadable') return; // the next read that works is issued after this anyway
  const was = consent.known.k === 'reread' ? consent.known : undefined;
  // A stream of messages (setMetadata in a loop elsewhere) must not keep a re-read from ever ending:
  // only a holding one starts again from now.
  const after = hold || !was ? c.st.ids : was.after;
  consent.known = { k: 'reread', after, hold: hold || (was?.hold ?? false) };
}

// ---- the host's changes -----------------------------------------------------------------------

export function onSetChoice(c: Step, enabled: boolean, ask: number): void {
  const choiceTime = new Date(c.wall).toISOString();
  if (enabled !== true) {
    endAll(c, 'user-opted-out'); // at once, before the write (when unsure, off)
    return queueChange(c, { choice: 'disabled', choiceTime, cutAt: c.wall, asks: [ask] });
  }
  // An opt-in knows the cut it is made under; made before the stored choice was read, it comes after what the first read finds.
  const { consent } = c.st;
  queueChange(c, { choice: 'enabled', choiceTime, asks: [ask], ...(consent.everRead ? { base: consent.config.cut ?? 0 } : {}) });
}

export function onClear(c: Step, analyticsId: string, ask: number): void {
  endAll(c, 'cleared');
  queueChange(c, { analyticsId, cutAt: c.wall, asks: [ask] });
}

export function onSetMetadata(c: Step, metadata: StoredConfig['metadata'], ask: number): void {
  queueChange(c, { metadata, asks: [ask] });
}

/** Applied in memory now; stored next. Merged into the last change not yet under way (two at most wait). */
function queueChange(c: Step, change: Change): void {
  const { st } = c;
  const last = st.changes.at(-1);
  const writing = st.changes.length === 1 && st.io?.op.op === 'change';
  change.id = ++st.ids;
  const merged = last !== undefined && !writing;
  if (merged) st.changes[st.changes.length - 1] = merge(last, change);
  else st.changes.push(change);
  const cut = st.consent.config.cut;
  st.consent.config = applyChange(st.consent.config, change);
  // Merged into a change that cuts already: stored, it cuts once (what is stamped now must match it).
  if (merged && last.cutAt !== undefined && change.cutAt !== undefined) st.consent.config.cut = cut;
}

/** An opt-out made elsewhere that an opt-in of ours (not stored yet) did not know of: which came last is unsure, so off. */
function supersede(c: Step): void {
  queueChange(c, { choice: 'disabled', choiceTime: new Date(c.wall).toISOString(), asks: [] });
}

/** Two changes as one: the later wins; a clear wipes earlier metadata; the cut is dated at the latest opt-out or clear. */
export function merge(a: Change, b: Change): Change {
  const m: Change = { ...a, ...b, asks: [...a.asks, ...b.asks] };
  if (a.metadata && b.metadata) m.metadata = { ...a.metadata, ...b.metadata };
  if (b.analyticsId) delete m.metadata;
  return m;
}

// ---- what other tabs say -----------------------------------------------------------------------

/** Another tab changed the stored config: an opt-out applies now; anything that ended what came before ends it here too. */
export function onHeard(c: Step, h: Announce): void {
  const { consent } = c.st;
  const ends = h.change === 'clear' || h.emptied === true || h.choice === 'disabled';
  if (h.choice === 'disabled') {
    consent.heardOff = true; // until a choice stored after it says otherwise
    consent.config = { ...consent.config, choice: 'disabled' };
    // An opt-in of ours not yet stored does not undo it: it is stored as an opt-out instead.
    if (c.st.changes.some((ch) => ch.choice === 'enabled')) supersede(c);
  } else if (h.change === 'choice' && h.choice === 'enabled') consent.heardOff = false;
  // What came after it is told apart by the cut it made — unless a cut of ours is not stored yet:
  // what we stamped since is numbered by a guess that its cut may have taken (found by the model).
  const guessed = c.st.changes.some((ch) => ch.cutAt !== undefined);
  if (ends) endAll(c, h.change === 'clear' ? 'cleared' : 'user-opted-out', guessed ? {} : h);
  reread(c, ends);
}

// ---- storage results ---------------------------------------------------------------------------

/** A storage result: its config is what is stored now (our own pending changes applied over it). */
export function adopt(c: Step, op: StorageOp, id: number, r: StorageResult): void {
  const { st } = c;
  const { consent } = st;
  const read = r.config!;
  if (op.op === 'change') stored(c, r);
  if (consent.everRead && r.created) erased(c);
  else if (consent.everRead && !st.changes.some((ch) => ch.analyticsId) && read.analyticsId !== consent.config.analyticsId) endAll(c, 'cleared', read); // what came after it (under its id) goes on
  for (const ch of st.changes) if (ch.choice === 'enabled') ch.base ??= read.cut ?? 0;
  const unknownNo = read.choice === 'disabled' && st.changes.some((ch) => ch.choice === 'enabled' && ch.base! < (read.cut ?? 0));
  if (unknownNo) supersede(c);
  // What it holds from before a cut read now (another tab's, not heard of yet) ends: a request under way too.
  if (st.flight?.entries.some((e) => (e.cut ?? 0) < (read.cut ?? 0))) endAll(c, 'recorded before the last opt-out or clear', { cut: read.cut });
  let config = read;
  for (const change of st.changes) config = applyChange(config, change);
  if (consent.heardOff && config.choice !== 'disabled') config = { ...config, choice: 'disabled' };
  consent.config = config;
  const known = consent.known;
  if (known.k !== 'reread' || id > known.after) Object.assign(consent, { known: { k: 'read' }, everRead: true });
  // Messages may have been lost while it held ("I wrote events" too): the delivering tab looks in the next window.
  if (known.k === 'reread' && known.hold && consent.known.k === 'read' && st.lead === 'leading') st.timers.pass ??= c.now + st.s.intervalMs;
  st.storageFailures = 0;
  if (op.op === 'read' || op.op === 'change') settleAsks(c, r.othersFlying === true);
}

/** Our own change is stored (the first waiting): tell the other tabs, answer the host. */
function stored(c: Step, r: StorageResult): void {
  const { st, fx } = c;
  const done = st.changes.shift();
  if (!done) return;
  if (done.choice) st.consent.heardOff = false; // our choice, stored after what we heard
  const emptied = done.cutAt !== undefined;
  const change = done.analyticsId ? 'clear' : done.choice ? 'choice' : 'metadata';
  fx.push({ type: 'announce', change, choice: r.config!.choice, ...(emptied ? { emptied: true as const, cut: r.config!.cut ?? 0 } : {}) });
  const reason = done.analyticsId ? 'cleared' : 'user-opted-out';
  const flying = new Set(r.flying);
  for (const e of r.dropped ?? []) {
    if (flying.has(e.uuid)) unconfirmed(c, e, `${reason}: another tab may have been sending it`);
    else dropRef(c, e, reason, false);
  }
  if (emptied) for (const uuid of st.outbox.ended.keys()) st.outbox.ended.set(uuid, true); // emptied: nothing of before is left to remove
  // "Off" means nothing recorded before it arrives after the host is told: wait (bounded) for other tabs' requests.
  if (emptied && r.othersFlying && done.asks.length) {
    st.asks.settle.push(...done.asks);
    st.timers.settleBy ??= c.now + SETTLE_MS;
  } else for (const ask of done.asks) fx.push({ type: 'done', ask });
}

/** A read or change saw whether other tabs still fly: the opt-out's callers are answered once none do. */
function settleAsks(c: Step, othersFlying: boolean): void {
  if (othersFlying && c.st.timers.settleBy !== undefined) return arm(c, 'settle', SETTLE_POLL_MS); // armed only while an opt-out waits
  answerSettled(c);
}

export function answerSettled(c: Step): void {
  const { st, fx } = c;
  for (const ask of st.asks.settle.splice(0)) fx.push({ type: 'done', ask });
  delete st.timers.settle;
  delete st.timers.settleBy;
}

/**
 * The site's data was cleared under us (the config record vanished): treated as a clear. What this
 * tab holds ends; a cut is stored (and an opt-out it knew), so that nothing recorded before leaves.
 */
function erased(c: Step): void {
  const optedOut = c.st.consent.config.choice === 'disabled';
  endAll(c, 'cleared: the site data was cleared');
  const choice = optedOut ? { choice: 'disabled' as const, choiceTime: new Date(c.wall).toISOString() } : {};
  c.st.changes.unshift({ cutAt: c.wall, asks: [], id: ++c.st.ids, ...choice });
}

/** A storage op failed: we no longer know what is stored (off). An opt-out is still announced (it can only turn tabs off). */
export function readFailed(c: Step, op: StorageOp): void {
  const { st, fx } = c;
  st.consent.known = { k: 'unreadable' };
  if (op.op !== 'change') return;
  if (op.change.cutAt !== undefined) announceUnstored(c, op.change); // journaled, or retried: it can only turn tabs off
  else if (op.change.choice === 'disabled') fx.push({ type: 'announce', change: 'choice', choice: 'disabled' });
  for (const ch of st.changes) for (const ask of ch.asks.splice(0)) fx.push({ type: 'done', ask }); // answered, never rejected; the write is retried
}

/**
 * An opt-out or clear not known to be stored (journaled as its page closes, or its write failed),
 * announced: the other tabs end what they hold. The cut it will make is not known (this tab may
 * not have read the latest), so only a clear's events under its new id are told apart.
 */
export function announceUnstored(c: Step, ch: ConfigChange): void {
  const change = ch.analyticsId || !ch.choice ? 'clear' : 'choice'; // no choice: the cut of data cleared under us
  const choice = ch.choice === 'disabled' ? 'disabled' : c.st.consent.config.choice;
  c.fx.push({ type: 'announce', change, choice, emptied: true, ...(ch.analyticsId ? { analyticsId: ch.analyticsId } : {}) });
}

/** After a storage failure: the next try waits. */
export function storageBackoff(c: Step): void {
  c.st.storageFailures++;
  arm(c, 'storage', backoff(c.st.storageFailures, c.random));
}

// ---- after every step --------------------------------------------------------------------------

/** Tell the host if the gate's answer changed; what the user refused ends; what is off for this page stops. */
export function notifyChange(c: Step): ConsentState {
  const { st, fx } = c;
  const now = gate(c);
  if (now.enabled !== st.consent.told.enabled || now.reason !== st.consent.told.reason) {
    if (userSaidNo(now) && !userSaidNo(st.consent.told)) st.pass = 'sweep'; // what earlier pages left ends too, each with the reason
    st.consent.told = now;
    fx.push({ type: 'notify', state: now });
  }
  if (userSaidNo(now)) endAll(c, now.reason);
  else if (!now.enabled && now.reason !== 'loading') pageOff(c, now.reason);
  return now;
}

/**
 * Off for this page only (embedder, automation, dev build, unreadable storage): it stops sending;
 * what it accepted still goes to storage, for a page that may send it. Events held before the
 * choice was read are dropped with the reason.
 */
function pageOff(c: Step, reason: string): void {
  abortFlight(c);
  dropHeld(c, c.st.held.splice(0), reason);
}
