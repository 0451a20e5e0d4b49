// The pure core of consent and delivery: step(state, fact) → { state, effects }.
// Every decision about consent and delivery is made here, from the facts the shell reports (a
// monotonic `now`, storage results, other tabs' messages, answers, the page's lifecycle, the
// host's calls); the shell only carries out the effects. No I/O, no clock, no randomness, no
// globals: the same facts give the same effects, which is what lets test/node/model.test.ts check
// it against a model, and test/node/step.test.ts read as its specification.
// `state` is owned by the caller and updated in place (copying it per event would cost the hot path).
import { userSaidNo } from '../3-consent-gate.js';
import type { Signals } from '../signals.js';
import { MARK_SEND_MS, type StorageOp } from './contract.js';
import { adopt, answerSettled, gate, notifyChange, onClear, onHeard, onSetChoice, onSetMetadata, readFailed, reread, storageBackoff } from './consent.js';
import { addFailed, delivers, forgetStored, inGrace, journalId, journaledCuts, judge, leaving, live, notKept, onAdded, onAnswer, onListed, onMarked, onRecord, release, writing } from './delivery.js';
import { abortFlight, dropHeld } from './outcomes.js';
import { arm, backoff, due, nextWake } from './timers.js';
import type { Effect, Fact, Settings, State, Step, TimerName } from './types.js';

/** shutdown() waits this long at most for what is pending; the rest stays in the outbox. */
export const SHUTDOWN_WAIT_MS = 3000;

export function initialState(s: Settings, now: number): State {
  return {
    s,
    now,
    page: 'shown',
    consent: { config: { analyticsId: '', choice: 'unset', metadata: {} }, known: { k: 'unread' }, everRead: false, heardOff: false, told: { enabled: false, reason: 'loading' } },
    changes: [],
    held: [],
    lead: 'idle',
    timers: {},
    outbox: { unwritten: [], known: new Map(), ended: new Map(), attempts: new Map(), marked: false },
    storageFailures: 0,
    transport: { state: 'not-loaded', failures: 0 },
    failures: 0,
    asks: { flush: [], settle: [] },
    pass: false,
    ids: 0,
    eventCounter: 0,
  };
}

export function step(st: State, f: Fact): { state: State; effects: Effect[] } {
  const c: Step = { st, fx: [], now: Math.max(st.now, f.now), wall: f.wall, signals: f.signals, random: f.random };
  st.now = c.now;
  if (st.page !== 'closed') for (const timer of due(c)) onTimer(c, timer);
  handle(c, f);
  settle(c);
  return { state: st, effects: c.fx };
}

function onTimer(c: Step, timer: TimerName): void {
  if (timer === 'pass' || timer === 'retry' || timer === 'reload') c.st.pass ||= 'due'; // a reload: the pass that waited for it
  if (timer === 'settleBy') answerSettled(c); // the other tabs' requests had their time
  // reload, storage, quota, settle, shutdown: what counts is that they are no longer armed
}

function handle(c: Step, f: Fact): void {
  const { st, fx } = c;
  if (st.page === 'closed') {
    if ('ask' in f) fx.push({ type: 'done', ask: f.ask }); // after shutdown(): answered, nothing done
    return;
  }
  switch (f.type) {
    case 'record': return onRecord(c, f.events, f.uuids);
    case 'set-choice': return onSetChoice(c, f.enabled, f.ask);
    case 'clear': return onClear(c, f.analyticsId, f.ask);
    case 'set-metadata': return onSetMetadata(c, f.metadata, f.ask);
    case 'flush': return onFlush(c, f.ask);
    case 'shutdown': return onShutdown(c, f.ask);
    case 'stored': return onStored(c, f);
    case 'heard': return onHeard(c, f);
    case 'wrote': return onWrote(c, f.flush);
    case 'answer': return onAnswer(c, f);
    case 'lead': return onLead(c, f.leading);
    case 'transport': return onTransport(c, f);
    case 'page': return onPage(c, f.page);
    case 'online': return onOnline(c);
    case 'storage-lost': return onStorageLost(c, f.upgraded === true);
    default:
      return void (f.type satisfies 'start' | 'tick'); // what they bring is in settle()
  }
}

/**
 * The connection went (the site's data cleared, or a newer build upgrading): read again, sending
 * nothing meanwhile. What a tab held before it ever read storage ends if the data went: an opt-out
 * or clear() that ended it may have gone with it, and nothing else says which came first (found by
 * the model). An upgrade keeps the data, and the cut that judges them.
 */
function onStorageLost(c: Step, upgraded: boolean): void {
  const { st } = c;
  if (!st.consent.everRead && !upgraded) dropHeld(c, st.held.splice(0), 'storage was cleared before it was read');
  reread(c, true);
}

function onFlush(c: Step, ask: number): void {
  c.st.asks.flush.push(ask);
  c.st.pass = c.st.pass === 'sweep' ? 'sweep' : 'asked';
}

function onShutdown(c: Step, ask: number): void {
  c.st.asks.shutdown ??= ask;
  c.st.timers.shutdown ??= c.now + SHUTDOWN_WAIT_MS;
  c.st.pass ||= 'asked';
}

/** Another tab wrote events: the delivering tab looks in its next window (or now, if asked to flush). */
function onWrote(c: Step, flush: boolean): void {
  const { st } = c;
  if (flush && (st.lead === 'leading' || st.lead === 'asking')) st.pass = 'asked'; // never sweeping: a tab the user said no to does not lead
  else if (st.lead === 'leading') st.timers.pass ??= c.now + st.s.intervalMs;
}

function onStored(c: Step, f: Fact & { type: 'stored' }): void {
  const { st } = c;
  const io = st.io?.id === f.id ? st.io : undefined;
  st.io = io ? undefined : st.io;
  // Its mark outlives a request started now (by both clocks: a sleeping machine stops the monotonic one).
  const inTime = io !== undefined && c.now - io.at <= MARK_SEND_MS && c.wall - io.wall >= 0 && c.wall - io.wall <= MARK_SEND_MS;
  if (!f.result.ok) return storageFailed(c, f.op, f.result.error);
  adopt(c, f.op, f.id, f.result);
  if (f.op.op === 'read') notKept(c, f.result);
  if (f.op.op === 'add') onAdded(c, f.result);
  if (f.op.op === 'list') onListed(c, f.op, f.result, inTime);
  if (f.op.op === 'remove') onRemoved(c, f.op);
  if (f.op.op === 'mark') onMarked(c, f.op, inTime);
}

function storageFailed(c: Step, op: StorageOp, error: string | undefined): void {
  const { st } = c;
  storageBackoff(c);
  if (op.op === 'add') return addFailed(c, op, error);
  if (op.op === 'list') {
    st.lastError = `IndexedDB read failed: ${(error ?? '').slice(0, 200)}`;
    if (!op.mark) st.pass = 'sweep'; // tried again after the backoff
    else st.timers.pass = st.timers.storage; // the pass again with the storage retry (flush() is answered meanwhile)
  }
  if (op.op === 'read' || op.op === 'change') readFailed(c, op);
  if (op.op === 'mark') arm(c, 'retry', backoff(st.storageFailures, c.random)); // when unsure, it sends nothing: again later
}

function onRemoved(c: Step, op: StorageOp & { op: 'remove' }): void {
  const { outbox } = c.st;
  for (const uuid of op.uuids) if (outbox.ended.has(uuid)) outbox.ended.set(uuid, true);
  if (op.unmark) outbox.marked = false;
}

function onLead(c: Step, leading: boolean): void {
  const { st } = c;
  if (st.lead === 'idle') return; // a late answer to a request let go since
  const was = st.lead;
  st.lead = leading ? 'leading' : 'following';
  if (leading && was !== 'leading') st.timers.pass ??= c.now + st.s.intervalMs; // what earlier pages left goes in the next window
  if (leading) return;
  // Written while it asked: now the delivering tab's, which is told (to send now, if its host asked).
  if (!forgetStored(st) || was !== 'asking') return;
  const flush = st.pass === 'asked';
  if (flush && !st.outbox.unwritten.length && !writing(st).length) st.pass = false; // nothing of its own left to write or send
  c.fx.push({ type: 'wrote', flush });
}

function onTransport(c: Step, f: Fact & { type: 'transport' }): void {
  const { st, fx } = c;
  st.transport = { state: f.result, ...(f.problem ? { problem: f.problem } : {}), failures: st.transport.failures };
  if (f.result === 'ready') st.transport.failures = 0; // a pass that waited for it goes now; the rest in its window
  if (f.result === 'failed') arm(c, 'reload', backoff(++st.transport.failures, c.random));
  if (f.result === 'unusable') fx.push({ type: 'audit', entry: { name: '(transport)', outcome: 'dropped', reason: `posthog-js is not usable (${f.problem ?? ''}): nothing is sent; events wait in the outbox` } });
}

function onPage(c: Step, page: 'shown' | 'hidden' | 'closing' | 'restored'): void {
  const { st, fx } = c;
  if (page === 'closing') {
    st.page = 'closing';
    return leaving(c);
  }
  if (st.page === 'closing' && page === 'hidden') return;
  // Back (the back/forward cache): it holds its events again itself; its cuts stay journaled (applied once, by their ids).
  if (st.page === 'closing') fx.push({ type: 'journal', entries: [], changes: journaledCuts(st) });
  if (st.page === 'closing' && page === 'shown') st.pass ||= 'asked';
  if (page === 'hidden' && st.page === 'shown') st.pass ||= 'asked'; // deliver while the page still runs
  st.page = page === 'restored' ? 'shown' : page;
  if (page === 'restored') reread(c, true); // other tabs' messages were lost while it was frozen
}

function onOnline(c: Step): void {
  delete c.st.timers.retry;
  delete c.st.timers.reload;
  c.st.pass ||= 'asked';
}

// ---- after every fact --------------------------------------------------------------------------

/** Consent first, then who delivers, then the next storage op or request, then the host's calls, then when to wake. */
function settle(c: Step): void {
  const { st, fx } = c;
  if (st.page === 'closed') return;
  notifyChange(c);
  release(c);
  leadSettle(c);
  transportSettle(c);
  passSettle(c);
  if (!st.io) issue(c, nextOp(c));
  if (answerAsks(c)) return;
  fx.push({ type: 'wake', at: nextWake(c) });
}

/**
 * One tab delivers: this one asks to while the gate is on (and through a re-read that holds
 * sending). Not while its posthog-js chunk cannot be had: a page keeps a failed (or hung) import
 * as it is, so another tab, whose import may work, delivers meanwhile; a failed one asks again
 * when its reload is due.
 */
function leadSettle(c: Step): void {
  const { st, fx } = c;
  const state = gate(c);
  const holding = st.consent.known.k === 'reread' && st.consent.known.hold && st.lead !== 'idle';
  const { state: transport } = st.transport;
  const stuck = transport === 'hung' || (transport === 'failed' && st.timers.reload !== undefined);
  const want = live(st) && !inGrace(c) && !stuck && (state.enabled || (holding && state.reason === 'loading'));
  if (want === (st.lead !== 'idle')) return;
  if (!want) forgetStored(st);
  st.lead = want ? 'asking' : 'idle';
  fx.push({ type: 'lead', lead: want });
}

/** posthog-js is loaded as soon as this tab may send and something waits. */
function transportSettle(c: Step): void {
  const { st, fx } = c;
  const waits = st.outbox.known.size > 0 || st.outbox.unwritten.length > 0;
  const { state } = st.transport;
  if (!waits || !delivers(c) || !(state === 'not-loaded' || (state === 'failed' && st.timers.reload === undefined))) return;
  st.transport.state = 'loading';
  fx.push({ type: 'load-transport' });
}

/** A pass wanted: this tab's to make, another tab's (asked to send now), or not possible now. */
function passSettle(c: Step): void {
  const { st, fx } = c;
  const state = gate(c);
  if (st.pass === 'sweep' && !userSaidNo(state)) st.pass = 'due'; // the user's no was lifted meanwhile: a pass as any other
  if (st.pass === false || st.pass === 'sweep') return;
  if (state.reason === 'loading') return; // once the choice is read
  if (!delivers(c)) {
    if (st.lead === 'asking' || (st.outbox.unwritten.length && !st.outbox.stranded) || writing(st).length) return; // once it is known who delivers, once written
    if (st.pass === 'asked' && state.enabled && st.lead === 'following') fx.push({ type: 'wrote', flush: true });
    st.pass = false;
    return;
  }
  if (st.flight) return; // once it is answered
  const { state: transport } = st.transport;
  const stuck = transport === 'hung' || transport === 'unusable' || (transport === 'failed' && st.timers.reload !== undefined);
  if (st.timers.retry !== undefined || stuck) st.pass = false; // the retry, or the reload, brings it back
  // Otherwise served by nextOp: a list by the delivering tab, or the mark of a tab whose writes fail.
}

function issue(c: Step, op: StorageOp | undefined): void {
  if (!op) return;
  const id = ++c.st.ids;
  c.st.io = { id, op, at: c.now, wall: c.wall };
  c.fx.push({ type: 'storage', id, op });
}

/** The next storage op: what the user chose first, then writes, then removals, then a pass. */
function nextOp(c: Step): StorageOp | undefined {
  const { st } = c;
  const { known } = st.consent;
  const blocked = st.timers.storage !== undefined; // storage failed: after the backoff
  if (st.changes.length && !blocked) return changeOp(st);
  if ((known.k !== 'read' || (st.asks.settle.length && st.timers.settle === undefined)) && !blocked) return { op: 'read' };
  const own = strandedMark(c); // a failing write does not wait on a mark: it has a backoff of its own (retry)
  if (own) return own;
  if (blocked) return undefined;
  const unwritten = unflown(st);
  if (unwritten.length) return { op: 'add', entries: takeUnwritten(st, unwritten.slice(0, st.s.writeChunk)) };
  const removals = [...st.outbox.ended].filter(([, removed]) => !removed).map(([uuid]) => uuid);
  if (removals.length || (st.outbox.marked && !st.flight)) return removeOp(c, removals);
  if (st.pass === 'sweep') return list(st, false);
  const { state } = st.transport;
  const listable = state === 'ready' || state === 'not-loaded' || (state === 'failed' && st.timers.reload === undefined); // what it finds loads posthog-js
  if (st.pass && st.lead === 'leading' && delivers(c) && listable && !st.flight && st.timers.retry === undefined) return list(st, true);
  return undefined;
}

/** A tab whose writes fail sends what only it holds, once it is marked: the mark first (a pass served). */
function strandedMark(c: Step): StorageOp | undefined {
  const { st } = c;
  if (!st.outbox.stranded || !st.pass || !delivers(c) || st.flight || st.timers.retry !== undefined || st.transport.state !== 'ready' || st.consent.known.k !== 'read') return undefined;
  const ready = judge(c, unflown(st)).slice(0, st.s.batch);
  if (!ready.length) return undefined;
  if (st.lead !== 'leading') st.pass = false;
  return { op: 'mark', uuids: ready.map((e) => e.uuid) };
}

/** A pass, served by a list (a sweep claims nothing: it only drops). What is wanted while it runs is wanted after it. */
function list(st: State, mark: boolean): StorageOp {
  st.pass = false;
  return { op: 'list', limit: st.s.batch, mark };
}

/** The first change waiting, to store; with a cut, under the id it would be journaled under (applied once). */
function changeOp(st: State): StorageOp {
  const { asks: _, base: __, id: ___, ...change } = st.changes[0]!;
  return { op: 'change', change, ...(change.cutAt !== undefined ? { id: journalId(st, st.changes[0]!) } : {}) };
}

/** What is unwritten and not in this tab's request (a stranded tab sends its own). */
const unflown = (st: State) => {
  const flying = new Set(st.flight?.entries.map((e) => e.uuid));
  return st.outbox.unwritten.filter((e) => !flying.has(e.uuid));
};

function takeUnwritten(st: State, entries: State['outbox']['unwritten']) {
  const taken = new Set(entries.map((e) => e.uuid));
  st.outbox.unwritten = st.outbox.unwritten.filter((e) => !taken.has(e.uuid));
  return entries;
}

/** Removes what ended here; the mark too once no request of ours is under way; and the endpoint's wait, for the next tab. */
function removeOp(c: Step, removals: string[]): StorageOp {
  const { st } = c;
  const retry = st.timers.retry;
  return { op: 'remove', uuids: removals.slice(0, st.s.writeChunk), unmark: !st.flight, ...(retry !== undefined ? { notBefore: c.wall + (retry - c.now) } : {}) };
}

/** flush() once nothing it asked for is under way; shutdown() once that is so, or its time is up (then true: closed). */
function answerAsks(c: Step): boolean {
  const { st, fx } = c;
  const io = st.io?.op.op;
  const busy = st.consent.known.k === 'unread' || st.pass !== false || st.flight !== undefined || (st.outbox.unwritten.length > 0 && !st.outbox.stranded) || io === 'add' || io === 'list' || io === 'change';
  if (!busy) for (const ask of st.asks.flush.splice(0)) fx.push({ type: 'done', ask });
  if (st.asks.shutdown === undefined) return false;
  const removing = [...st.outbox.ended.values()].includes(false);
  if (st.timers.shutdown !== undefined && (busy || st.changes.length > 0 || removing)) return false;
  close(c, st.asks.shutdown);
  return true;
}

/** Shut down: a request under way stops (what it carried stays stored for the next visit); everything is let go. */
function close(c: Step, ask: number): void {
  const { st, fx } = c;
  abortFlight(c);
  if (st.lead !== 'idle') fx.push({ type: 'lead', lead: false });
  st.lead = 'idle';
  st.page = 'closed';
  st.timers = {};
  for (const a of [...st.asks.flush.splice(0), ...st.asks.settle.splice(0)]) fx.push({ type: 'done', ask: a });
  fx.push({ type: 'wake', at: undefined }, { type: 'closed' }, { type: 'done', ask });
}

export { gate, delivers };
export type { Signals };
