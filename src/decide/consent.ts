// Consent in the pure core: what the user chose, as this tab knows it from storage, from other
// tabs and from its own host; and the gate (3-consent-gate.ts) asked over those facts.
// Rules: a stored result is the truth, except that it never turns on what a later message turned
// off; an opt-out applies in memory at once and is written until it is stored; a message can
// only turn a tab off (at once), or make it read storage again.
import { decide, userSaidNo, type ConsentState } from '../3-consent-gate.js';
import { applyChange, type StoredConfig } from './config.js';
import { abortFlight, discardAll, drop, dropUnwritten } from './outcomes.js';
import type { ConfigChange, Effect, Fact, State, StorageOp, StorageResult } from './types.js';

type Fx = Effect[];

/** An opt-out waits at most this long for another tab's request in flight to end (that tab hears it and aborts). */
export const SETTLE_MS = 3000;

/** The gate's answer now. */
export function gate(st: State): ConsentState {
  return decide({
    stored: storedFact(st),
    embedderForbids: st.s.embedderPolicyOff || st.signals.embedderForbids,
    privacySignal: st.s.respectPrivacySignals && st.signals.privacySignal,
    automation: st.signals.automation,
    devBuild: st.s.devBuild,
    force: st.s.force,
  });
}

function storedFact(st: State) {
  const choice = st.wish?.choice ?? st.config.choice;
  if (st.unreadable) return 'unreadable';
  if (choice === 'disabled') return 'disabled'; // an opt-out known in any way applies, read or not
  if (!st.loaded || st.stale === 'unknown') return 'loading';
  return choice;
}

/** The user's choice not yet stored ends what came before it: an opt-out, or an opt-in that replaced one. */
const wishEmpties = (wish: State['wish']) => wish !== undefined && (wish.choice === 'disabled' || wish.empty === true);

/** The change this tab still has to store, if any (an opt-out first). */
export function pendingChange(st: State): { change: ConfigChange; empty: boolean } | undefined {
  if (st.wish) {
    const empty = wishEmpties(st.wish);
    return { change: { choice: st.wish.choice, choiceTime: st.wish.choiceTime, ...(empty ? { cutAt: st.wish.at } : {}) }, empty };
  }
  if (st.clearing) return { change: { analyticsId: st.clearing.analyticsId, cutAt: st.clearing.at }, empty: true };
  if (st.metadata) return { change: { metadata: st.metadata.metadata }, empty: false };
  return undefined;
}

export function onSetChoice(st: State, fx: Fx, f: Fact & { type: 'set-choice' }): void {
  const choice = f.enabled === true ? 'enabled' : 'disabled'; // when unsure, off
  const empty = wishEmpties(st.wish); // an opt-out not yet stored still ends what came before it
  // An earlier wish's askers wait on with this one if it still carries their opt-out (answered once
  // it is stored and other tabs' requests have ended); otherwise the newer choice replaces theirs.
  const carried = st.wish && (st.wish.choice === choice || empty) ? st.wish.asks : [];
  if (st.wish && !carried.length) for (const ask of st.wish.asks) fx.push({ type: 'done', ask });
  const asks = [...carried, f.ask];
  // The cut is dated at the user's latest "no": everything recorded up to it ends.
  const at = choice === 'enabled' && empty ? (st.wish?.at ?? f.wall) : f.wall;
  st.wish = { choice, choiceTime: new Date(f.wall).toISOString(), asks, at, ...(empty ? { empty } : {}) };
  if (choice === 'disabled') discardAll(st, fx, 'user-opted-out'); // at once, before the write
}

export function onClear(st: State, fx: Fx, f: Fact & { type: 'clear' }): void {
  discardAll(st, fx, 'cleared');
  st.clearing = { analyticsId: f.analyticsId, asks: [...(st.clearing?.asks ?? []), f.ask], at: st.clearing?.at ?? f.wall };
  st.config = applyChange(st.config, { analyticsId: f.analyticsId });
}

export function onSetMetadata(st: State, _fx: Fx, f: Fact & { type: 'set-metadata' }): void {
  const merged = { ...st.metadata?.metadata, ...f.metadata };
  st.metadata = { metadata: merged, asks: [...(st.metadata?.asks ?? []), f.ask] };
  st.config = applyChange(st.config, { metadata: f.metadata });
}

/** Another tab changed the stored config: an opt-out applies now; anything else once read again. */
export function onHeard(st: State, fx: Fx, f: Fact & { type: 'heard' }): void {
  if (st.closed) return;
  // A stream of messages (setMetadata in a loop elsewhere) must not keep a 'heard' re-read from ever ending.
  const ends = f.change === 'clear' || f.emptied === true || f.choice === 'disabled'; // what was recorded before it
  if (!st.stale || ends) st.heardSeq = st.seq;
  st.stale = ends ? 'unknown' : st.stale || 'heard'; // what is recorded now waits for the new id or cut
  if (f.choice === 'disabled') {
    st.heardOff = true; // until a choice stored after it says otherwise (a newer opt-in), even if that opt-out was never stored
    if (st.wish?.choice === 'enabled') for (const ask of st.wish.asks.splice(0)) fx.push({ type: 'done', ask });
    if (st.wish?.choice === 'enabled') st.wish = undefined; // an older opt-in of ours, not yet stored, does not override it
    if (st.config.choice !== 'disabled') (st.config = { ...st.config, choice: 'disabled' }), heardOff(st, fx, 'user-opted-out');
  } else if (f.choice === 'enabled' && f.change === 'choice') st.heardOff = false;
  if (f.change === 'clear') heardOff(st, fx, 'cleared'); // nothing may leave under the old id
  else if (f.emptied && f.choice !== 'disabled') heardOff(st, fx, 'user-opted-out'); // an opt-out at once replaced by an opt-in: what came before it ends
}

/**
 * Another tab emptied the outbox: what this tab holds ends here too, in this tab's audit (the
 * request in flight as unconfirmed). Each tab's audit has one terminal entry per event it knew of.
 */
function heardOff(st: State, fx: Fx, reason: string): void {
  abortFlight(st, fx, reason);
  dropUnwritten(st, fx, reason);
  for (const e of [...st.known.values()]) drop(st, fx, e, reason); // audited here: so removed from storage too, whatever the other tab managed to store
}

/** A storage result: its config is what is stored now. */
export function adopt(st: State, fx: Fx, op: StorageOp, seq: number, r: StorageResult): void {
  if (!r.ok || !r.config) return;
  const was = st.config;
  let config = r.config;
  if (op.op === 'change' && op.change.choice) st.heardOff = false; // our own choice, stored after what we heard
  if ((seq <= st.heardSeq || st.heardOff) && config.choice !== 'disabled' && was.choice === 'disabled') config = { ...config, choice: 'disabled' }; // older than what we heard
  if (st.loaded && r.created) erased(st, fx, was, config);
  else if (st.loaded && config.analyticsId !== was.analyticsId && !st.clearing) heardOff(st, fx, 'cleared');
  st.config = st.clearing ? applyChange(config, { analyticsId: st.clearing.analyticsId }) : config;
  if (st.metadata) st.config = applyChange(st.config, { metadata: st.metadata.metadata });
  st.loaded = true;
  st.unreadable = false;
  st.storageFailures = 0;
  if (seq > st.heardSeq && st.stale) {
    // Read after the message (an op issued before it may have read before the other tab wrote).
    // Messages may have been lost meanwhile ("I wrote events" too): the delivering tab looks in the next window.
    if (st.stale === 'unknown' && st.leading) st.flushAt ??= st.now + st.s.intervalMs;
    st.stale = false;
  }
  if (op.op === 'change') changed(st, fx, op, r.othersFlying === true);
}

/**
 * Site data was cleared under us (the config record vanished): the old id is gone for good, and
 * what was recorded under it too. An opt-out this tab knows is stored again (when unsure, off).
 */
function erased(st: State, fx: Fx, was: StoredConfig, now: StoredConfig): void {
  heardOff(st, fx, 'cleared: the site data was cleared');
  if (was.choice === 'disabled' && now.choice !== 'disabled' && !st.wish) st.wish = { choice: 'disabled', choiceTime: was.choiceTime ?? new Date(st.wall).toISOString(), asks: [], at: st.wall };
}

/** Our own change is stored: say so to the other tabs, answer the host. */
function changed(st: State, fx: Fx, op: StorageOp & { op: 'change' }, othersFlying: boolean): void {
  const { change } = op;
  let kind: 'choice' | 'clear' | 'metadata' = 'metadata';
  let asks: number[] = [];
  // The very wish written (an opt-in that must also end what came before is not done by a plain one).
  if (change.choice && st.wish?.choice === change.choice && st.wish.choiceTime === change.choiceTime && op.empty === wishEmpties(st.wish)) (kind = 'choice'), (asks = st.wish.asks), (st.wish = undefined);
  else if (change.analyticsId && st.clearing?.analyticsId === change.analyticsId) (kind = 'clear'), (asks = st.clearing.asks), (st.clearing = undefined);
  else if (change.metadata && st.metadata?.metadata === change.metadata) (asks = st.metadata.asks), (st.metadata = undefined);
  else return; // replaced meanwhile by a newer wish: that one is written next
  fx.push({ type: 'announce', change: kind, choice: st.config.choice, ...(op.empty ? { emptied: true as const } : {}) });
  // "Off" means nothing recorded before it arrives after the host is told: wait for other tabs' requests in flight to end (bounded).
  if (op.empty && othersFlying) st.settling = { asks: [...(st.settling?.asks ?? []), ...asks], until: st.now + SETTLE_MS, checkAt: st.now };
  else for (const ask of asks) fx.push({ type: 'done', ask });
}

/** A storage op failed: we no longer know what is stored. An opt-out is still announced (it can only turn tabs off) and retried. */
export function failed(st: State, fx: Fx, op: StorageOp): void {
  st.storageFailures++;
  st.unreadable = true;
  if (op.op !== 'change') return;
  if (op.change.choice === 'disabled') fx.push({ type: 'announce', change: 'choice', choice: 'disabled' });
  const asks = [...(st.wish?.asks ?? []), ...(st.clearing?.asks ?? []), ...(st.metadata?.asks ?? [])];
  for (const ask of asks) fx.push({ type: 'done', ask }); // answered (never rejected); the write is retried
  if (st.wish) st.wish.asks = [];
  if (st.clearing) st.clearing.asks = [];
  st.metadata = undefined; // metadata is not worth retrying against a failing disk; the choice and the id are
}

/** After every step: tell the host if the gate's answer changed; what the user refused is dropped. */
export function notifyChange(st: State, fx: Fx): ConsentState {
  const now = gate(st);
  if (now.enabled !== st.notified.enabled || now.reason !== st.notified.reason) {
    if (userSaidNo(now) && !userSaidNo(st.notified)) st.sweep = true; // what earlier pages left is dropped too, each with the reason
    st.notified = now;
    fx.push({ type: 'notify', state: now });
  }
  if (userSaidNo(now)) discardAll(st, fx, now.reason);
  else if (!now.enabled && now.reason !== 'loading') pageOff(st, fx, now.reason);
  return now;
}

/**
 * Off for this page only (embedder, automation, dev build, unreadable storage): it stops sending;
 * what it accepted still goes to storage, for a page that may send it. Events held before the
 * choice was read, and (in memory mode) the only copy of what waits, are dropped with the reason.
 */
function pageOff(st: State, fx: Fx, reason: string): void {
  abortFlight(st, fx);
  for (const h of st.held) drop(st, fx, { uuid: h.uuid, kind: h.event.kind, name: h.event.name }, reason, false);
  st.held = [];
  if (st.mode === 'memory') dropUnwritten(st, fx, reason);
}

/** The cut new entries are accepted under: the stored one, plus this tab's emptying changes not yet stored (they are stored first). */
export function cutNow(st: State): number {
  return (st.config.cut ?? 0) + (wishEmpties(st.wish) ? 1 : 0) + (st.clearing ? 1 : 0);
}
