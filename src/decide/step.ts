// The pure core of consent and delivery: step(state, fact) → { state, effects }.
// Every decision of the module after an event is validated is made here, from the facts the
// shell reports (a monotonic `now`, storage results, other tabs' messages, answers, the page's
// lifecycle, the host's calls); the shell (src/shell/) only carries out the effects. No I/O, no
// clock, no randomness, no globals: the same facts give the same effects, which is what lets
// test/node/model.test.ts check it against a model over thousands of random interleavings.
// `state` is owned by the caller and updated in place (a tab has one; copying it per event
// would cost the hot path), and returned for convenience.
import type { Signals } from '../signals.js';
import { adopt, failed, gate, notifyChange, onClear, onHeard, onSetChoice, onSetMetadata, pendingChange } from './consent.js';
import { addFailed, backoff, closingSend, delivers, handOver, inGrace, judge, onAdded, onAnswer, onListed, onRecord, release, send } from './delivery.js';
import { drop, abortFlight } from './outcomes.js';
import type { Effect, Fact, Settings, State, StorageOp } from './types.js';

type Fx = Effect[];

/** shutdown() waits this long at most for what is pending to be delivered; the rest stays in the outbox. */
export const SHUTDOWN_WAIT_MS = 3000;
const SETTLE_POLL_MS = 50;

export function initialState(s: Settings, now: number, wall: number, signals: Signals): State {
  return {
    s, now, wall, signals, random: 0.5, closed: false, page: 'shown',
    config: { analyticsId: '', choice: 'unset', metadata: {} }, loaded: false, unreadable: false, stale: false, heardOff: false, heardSeq: 0,
    held: [], notified: { enabled: false, reason: 'loading' }, eventCounter: 0,
    mode: 'indexeddb', staged: [], known: new Map(), attempts: new Map(), seq: 0,
    leading: false, wantLead: false, leadKnown: false, transport: 'not-loaded', loadFailures: 0, loadAgainAt: 0,
    failures: 0, retryAt: 0, quotaUntil: 0, passWanted: false, storageRetryAt: 0, storageFailures: 0,
    removals: new Set(), discarded: new Set(), sweep: false, unmark: false, flushAsks: [], nextId: 1,
  };
}

export function step(st: State, f: Fact): { state: State; effects: Effect[] } {
  const fx: Effect[] = [];
  st.now = Math.max(st.now, f.now); // monotonic, whatever the shell's clock does
  st.wall = f.wall;
  st.signals = f.signals;
  st.random = f.random;
  if (f.type === 'set-choice' || f.type === 'clear' || f.type === 'set-metadata') st.storageRetryAt = 0; // the host's call tries storage again now
  handle(st, fx, f);
  settle(st, fx);
  return { state: st, effects: fx };
}

function handle(st: State, fx: Fx, f: Fact): void {
  switch (f.type) {
    case 'start': return;
    case 'tick': return void (st.wakeAt = undefined); // that wake-up is spent (a timer may fire a little early)
    case 'record': return onRecord(st, fx, f);
    case 'set-choice': return st.closed ? void fx.push({ type: 'done', ask: f.ask }) : onSetChoice(st, fx, f);
    case 'clear': return st.closed ? void fx.push({ type: 'done', ask: f.ask }) : onClear(st, fx, f);
    case 'set-metadata': return st.closed ? void fx.push({ type: 'done', ask: f.ask }) : onSetMetadata(st, fx, f);
    case 'flush': return void (st.flushAsks.push(f.ask), (st.passWanted = true));
    case 'shutdown': return onShutdown(st, fx, f.ask);
    case 'stored': return onStored(st, fx, f);
    case 'heard': return onHeard(st, fx, f);
    // A flush asked of the delivering tab while this one is still learning whether it leads: kept, not lost.
    case 'wrote': return void (f.flush && (st.leading || (st.wantLead && !st.leadKnown)) ? (st.passWanted = true) : st.leading && (st.flushAt ??= st.now + st.s.intervalMs));
    case 'answer': return onAnswer(st, fx, f);
    case 'lead':
      if (st.leading && !f.leading) handOver(st);
      return void ((st.leading = f.leading && st.wantLead), (st.leadKnown = true), st.leading && (st.flushAt ??= st.now + st.s.intervalMs)); // what earlier pages left goes in the next window
    case 'transport': return onTransport(st, fx, f);
    case 'page': return onPage(st, fx, f.page);
    case 'storage-lost': return void ((st.stale = 'unknown'), (st.heardSeq = st.seq));
    case 'online': return void ((st.loadAgainAt = 0), (st.retryAt = 0), (st.passWanted = true));
  }
}

function onShutdown(st: State, fx: Fx, ask: number): void {
  if (st.closed) return void fx.push({ type: 'done', ask });
  st.shutdownAsk = ask;
  st.shutdownBy ??= st.now + SHUTDOWN_WAIT_MS;
  st.passWanted = true;
}

function onStored(st: State, fx: Fx, f: Fact & { type: 'stored' }): void {
  if (st.io?.id === f.id) st.io = undefined;
  const { op, result: r } = f;
  if (!r.ok) return storageFailed(st, fx, op, r.error);
  adopt(st, fx, op, f.seq, r);
  if (st.settling && (!r.othersFlying || st.now >= st.settling.until) && (op.op === 'read' || op.op === 'change')) {
    for (const ask of st.settling.asks) fx.push({ type: 'done', ask });
    st.settling = undefined;
  } else if (st.settling) st.settling.checkAt = st.now + SETTLE_POLL_MS;
  if (op.op === 'add') onAdded(st, fx, op.entries, r);
  else if (op.op === 'list') onListed(st, fx, r);
  else if (op.op === 'remove') for (const uuid of op.uuids) st.removals.delete(uuid);
  else if (op.op === 'change' && op.empty) {
    for (const e of r.dropped ?? []) if (!st.discarded.has(e.uuid) && !st.removals.has(e.uuid)) drop(st, fx, e, op.change.choice === 'disabled' ? 'user-opted-out' : 'cleared', false);
  }
  if (!pendingChange(st)) st.discarded.clear(); // no emptying of ours is pending: nothing left to skip
}

function storageFailed(st: State, fx: Fx, op: StorageOp, error: string | undefined): void {
  st.storageRetryAt = st.now + backoff(st.storageFailures + 1, st.random);
  if (op.op === 'add') return st.mode === 'indexeddb' ? addFailed(st, fx, op.entries, error) : undefined; // in memory already: tried again later
  if (op.op === 'list') (st.lastError = `IndexedDB read failed: ${(error ?? '').slice(0, 200)}`), (st.flushAt = st.storageRetryAt); // the pass again, later
  if (op.op === 'read' || op.op === 'change') failed(st, fx, op);
}

function onTransport(st: State, fx: Fx, f: Fact & { type: 'transport' }): void {
  st.transport = f.result;
  st.transportProblem = f.problem;
  if (f.result === 'ready') return void ((st.loadFailures = 0), (st.known.size || st.staged.length) && (st.flushAt ??= st.now));
  if (f.result === 'failed') st.loadAgainAt = st.now + backoff(++st.loadFailures, f.random);
  if (f.result === 'unusable') fx.push({ type: 'audit', entry: { name: '(transport)', outcome: 'dropped', reason: `posthog-js is not usable (${f.problem ?? ''}): nothing is sent; events wait in the outbox` } });
}

function onPage(st: State, fx: Fx, page: 'shown' | 'hidden' | 'closing' | 'restored'): void {
  if (page === 'restored') return void ((st.page = 'shown'), (st.stale = 'unknown'), (st.heardSeq = st.seq)); // other tabs' messages were lost while frozen
  if (page === 'hidden' && st.page === 'shown') st.passWanted = true; // the page still runs: deliver now
  if (page === 'shown' && st.page === 'closing') st.flushAt = st.now;
  st.page = page === 'hidden' && st.page === 'closing' ? 'closing' : page;
  if (page !== 'closing' || st.closed) return;
  // Leaving: send what this tab holds in a keepalive request; settle() writes what is staged at once
  // (no later task may run). A write still under way may not finish: it is written again, now, as
  // it was (its record is replaced if it did), but for what has ended since (an opt-out meanwhile).
  closingSend(st, fx, [...st.known.values()]);
  const underWay = st.io?.op.op === 'add' ? st.io.op.entries.filter((e) => st.known.has(e.uuid)) : [];
  if (underWay.length) issue(st, fx, { op: 'add', entries: underWay, closing: true }, true);
}

/** After every fact: consent first, then what to do next, then when to be woken. */
function settle(st: State, fx: Fx): void {
  if (st.closed) return;
  const state = notifyChange(st, fx);
  release(st, fx);
  // Leads while the gate is on, and through a re-read of storage (which holds sending).
  const on = state.enabled || (state.reason === 'loading' && st.loaded && st.wantLead);
  const want =
    st.page !== 'closing' && // a leaving page hands over at once
    ((on && st.mode === 'indexeddb' && !inGrace(st) && st.transport !== 'hung') ||
      (st.wantLead && st.removals.size > 0)); // not before what it delivered is removed: the next tab would send it again
  if (want !== st.wantLead) {
    st.wantLead = want;
    if (st.leading) handOver(st);
    st.leading = st.leadKnown = false;
    fx.push({ type: 'lead', lead: want });
  }
  const waits = st.known.size > 0 || st.staged.length > 0;
  if (waits && delivers(st) && (st.transport === 'not-loaded' || (st.transport === 'failed' && st.now >= st.loadAgainAt))) {
    st.transport = 'loading';
    fx.push({ type: 'load-transport' });
  }
  if (st.page === 'closing' && st.staged.length) issue(st, fx, { op: 'add', entries: takeStaged(st), closing: true }, true);
  passElsewhere(st, fx);
  if (!st.io) {
    const op = nextOp(st, fx);
    if (op) issue(st, fx, op);
  }
  answerAsks(st, fx);
  wake(st, fx);
}

function issue(st: State, fx: Fx, op: StorageOp, urgent = false): void {
  const id = st.nextId++;
  const seq = ++st.seq;
  if (!urgent) st.io = { id, op, seq };
  fx.push({ type: 'storage', id, op, seq });
}

/** A request of this tab's may still reach the endpoint: one in flight, or one aborted and not yet answered. */
const airborne = (st: State) => st.flight !== undefined || st.stopping !== undefined;

/** The first writeChunk of `set`: one transaction's worth. */
const chunk = (st: State, set: Set<string>) => [...set].slice(0, st.s.writeChunk);

function takeStaged(st: State) {
  const entries = st.staged;
  st.staged = [];
  return entries;
}

/** The next storage operation, if any: the choice first, then writes, then removals, then a delivery pass. */
function nextOp(st: State, fx: Fx): StorageOp | undefined {
  const change = pendingChange(st);
  if (!st.loaded || st.unreadable) {
    if (st.now < st.storageRetryAt) return undefined;
    return change ? { op: 'change', ...change } : { op: 'read' };
  }
  if (change) return { op: 'change', ...change };
  if (st.unmark && !airborne(st) && st.now >= st.storageRetryAt) {
    const uuids = chunk(st, st.removals);
    st.unmark = uuids.length < st.removals.size; // the last chunk also ends this tab's in-flight mark
    return { op: 'remove', uuids, unmark: !st.unmark };
  }
  if (st.stale || (st.settling && st.now >= st.settling.checkAt)) return { op: 'read' };
  if (st.staged.length && st.mode === 'indexeddb') return { op: 'add', entries: st.staged.splice(0, st.s.writeChunk) };
  if (st.removals.size && st.now >= st.storageRetryAt) {
    const uuids = chunk(st, st.removals);
    return { op: 'remove', uuids, unmark: !airborne(st) && uuids.length === st.removals.size }; // a mark in flight stays
  }
  // Back to IndexedDB once a write succeeds (what is stored already is skipped); not with a request
  // in flight: the delivering tab would list what it carries and send it again.
  if (st.mode === 'memory' && !st.flight && st.now >= st.storageRetryAt && gate(st).enabled) return { op: 'add', entries: [...st.known.values()] };
  if (st.sweep && st.mode === 'indexeddb') {
    st.sweep = false;
    return { op: 'list', limit: st.s.batch };
  }
  return pass(st, fx);
}

const due = (st: State) => st.passWanted || (st.flushAt !== undefined && st.now >= st.flushAt);

/** A pass is due but this tab does not deliver: once its writes are done, the delivering tab is asked to send now. */
function passElsewhere(st: State, fx: Fx): void {
  if (!due(st) || delivers(st) || gate(st).reason === 'loading' || (st.staged.length && st.mode === 'indexeddb' && st.loaded && !st.unreadable)) return;
  if (st.io?.op.op === 'add') return; // it asks when the write is done (onAdded)
  if (st.wantLead && !st.leadKnown) return; // about to know whether this tab leads
  if (st.passWanted && st.mode === 'indexeddb' && !st.leading && gate(st).enabled) fx.push({ type: 'wrote', flush: true });
  st.passWanted = false;
  st.flushAt = undefined;
}

/** A delivery pass when one is due: list the shared outbox (or, in memory, send from it). */
function pass(st: State, fx: Fx): StorageOp | undefined {
  if (!due(st)) return undefined;
  if (st.flight || st.transport === 'loading') return undefined; // after the answer, or once loaded
  if (st.mode === 'indexeddb' && st.wantLead && !st.leadKnown) return undefined; // once it is known who delivers: flush() waits
  const stuck = st.transport !== 'ready' && st.transport !== 'not-loaded' && st.known.size > 0;
  if (stuck || st.now < st.retryAt) {
    st.passWanted = false; // cannot send now: flush() is answered; the retry or the reload wakes us
    st.flushAt = st.now < st.retryAt ? st.retryAt : undefined;
    return undefined;
  }
  st.passWanted = false;
  st.flushAt = undefined;
  if (st.mode === 'memory') {
    const ready = judge(st, fx, [...st.known.values()]);
    if (ready.length > st.s.batch) st.passWanted = true;
    return void send(st, fx, ready.slice(0, st.s.batch));
  }
  return { op: 'list', limit: st.s.batch };
}

/** flush() is answered once nothing it asked for is under way; shutdown() once that is so too, or its time is up. */
function answerAsks(st: State, fx: Fx): void {
  if (st.settling && st.now >= st.settling.until) {
    for (const ask of st.settling.asks) fx.push({ type: 'done', ask }); // bounded: the other tab's request had its time
    st.settling = undefined;
  }
  const busy = (!st.loaded && !st.unreadable) || st.passWanted || st.flight !== undefined || st.staged.length > 0 || (st.io !== undefined && st.io.op.op !== 'read' && st.io.op.op !== 'remove');
  if (!busy || st.closed) for (const ask of st.flushAsks.splice(0)) fx.push({ type: 'done', ask });
  // shutdown() also waits (bounded) for a choice or clear() of the host's to be stored, and for
  // what was delivered to be removed (in chunks: the next page would send it again).
  if (st.shutdownAsk === undefined || ((busy || pendingChange(st) !== undefined || st.removals.size > 0) && st.now < st.shutdownBy!)) return;
  // Closed: a request still in flight is stopped (what it carried stays stored for the next visit).
  abortFlight(st, fx);
  st.closed = true;
  if (st.wantLead) fx.push({ type: 'lead', lead: false });
  st.leading = st.wantLead = false;
  for (const ask of st.flushAsks.splice(0)) fx.push({ type: 'done', ask });
  fx.push({ type: 'wake', at: undefined }, { type: 'closed' }, { type: 'done', ask: st.shutdownAsk });
  st.wakeAt = undefined;
}

/** One wake-up at the earliest deadline that matters; none while idle. */
function wake(st: State, fx: Fx): void {
  if (st.closed) return;
  const waits = st.known.size > 0 || st.staged.length > 0;
  const storageDue = !st.io && (st.unreadable || !st.loaded || st.removals.size > 0 || st.mode === 'memory');
  // Only deadlines still ahead: one already past waits on an answer (storage, request, transport), which wakes us itself.
  const ahead = (t: number | undefined, when = true) => (when && t !== undefined && t > st.now ? t : Infinity);
  const at = Math.min(
    ahead(st.flushAt),
    ahead(st.retryAt, waits && st.failures > 0),
    ahead(st.loadAgainAt, waits && st.transport === 'failed'),
    ahead(st.storageRetryAt, storageDue),
    ahead(st.shutdownBy),
    ahead(st.settling?.checkAt, !st.io),
    ahead(st.settling?.until),
  );
  const next = at === Infinity ? undefined : at;
  if (next === st.wakeAt) return;
  st.wakeAt = next;
  fx.push({ type: 'wake', at: next });
}
