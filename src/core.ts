// The shell: the stages wired to the pure core (decide/step.ts). Loaded right after
// createAnalytics() (analytics.ts, the startup facade), so that the page's own startup carries
// none of it. Here live the I/O and the host's calls: validation of what was recorded, IndexedDB,
// BroadcastChannel, Web Locks, posthog-js, timers and page events. They report facts to step()
// and carry out the effects it returns; no decision about consent or delivery is made here.
// Nothing here throws into the host, and nothing blocks it.
import { bytesToHex } from '@noble/hashes/utils.js';
import { nanoid } from 'nanoid';
import { INTAKE_LIMIT, Unreadable, type Intake } from './1-record.js';
import { validate, type Recorded, type Valid } from './2-validate.js';
import type { ConsentState, Reason } from './3-consent-gate.js';
import { loadTransport, HungTransport, UnusableTransport, type Transport } from './6-transport.js';
import { createAudit, type AuditEntry } from './7-audit.js';
import { CATALOG, type Catalog } from './catalog.js';
import { LOCK, JOURNAL_EVENTS } from './core/contract.js';
import { gate } from './core/consent.js';
import { delivers } from './core/delivery.js';
import { initialState, step } from './core/step.js';
import type { Effect, Fact, Input, State, TransportState } from './core/types.js';
import { disclosure } from './disclosure.js';
import { lead, type Leadership } from './drain-lock.js';
import { fromNative, nativeName } from './native.js';
import type { ResolvedOptions } from './options.js';
import { safeString } from './plain.js';
import { locationProps } from './root-domain.js';
import { readSignals } from './signals.js';
import { forgetLegacy, journalLeaving, newAnalyticsId, openStorage, outboxSize, plainMetadata, runStorageOp, type Metadata, type Storage, type Where } from './store.js';
import { connectTabs } from './tabs.js';

export { HOLD_CAPACITY } from './core/delivery.js';

export interface DeliveryStatus {
  /** Where pending events wait: IndexedDB, or (it failed) this tab's memory. */
  outbox: 'indexeddb' | 'memory';
  /** Why the outbox is in memory, when it is. */
  outboxProblem?: string;
  /** Events waiting in the outbox (all tabs', or this tab's when in memory). */
  pending: number;
  /** This tab is the one delivering the shared outbox. */
  delivering: boolean;
  transport: TransportState['state'];
  transportProblem?: string;
  /** The last failed request, and when the next attempt is due (ISO 8601). */
  lastError?: string;
  nextAttempt?: string;
}

export interface ConfigSnapshot {
  analyticsId: string;
  sessionId: string;
  enabled: boolean;
  reason: Reason;
  metadata: Metadata;
  storage: 'indexeddb' | 'unavailable';
  /** Where events wait and how delivery goes (the outbox, the transport, the last failure). */
  delivery: DeliveryStatus;
}

/** What the facade (analytics.ts) asks of the loaded stages. */
export interface Core {
  readonly ready: Promise<void>;
  /** Takes what the intake holds (validate, then the core): all of it now, or `sliced`, a slice per task of our own (at once when the page is hidden or closing). */
  take(sliced?: boolean): void;
  /** Drops everything the intake holds, unjudged, with `reason` (recorded while a policy forbade it). */
  refuse(reason: Reason): void;
  state(): ConsentState;
  setEnabled(enabled: boolean): Promise<void>;
  config(): Promise<ConfigSnapshot>;
  audit(): AuditEntry[];
  clear(): Promise<void>;
  setMetadata(props: unknown): Promise<void>;
  flush(): Promise<void>;
  shutdown(): Promise<void>;
  details(): string;
}

const clock = () => performance.now();

/**
 * Entries per IndexedDB write, and per list and request. IndexedDB clones what is put or read on
 * the main thread (here, 10–30 µs an entry), JSON and compression cost per entry too: these keep
 * each of those tasks to a few milliseconds whatever the burst.
 */
export const WRITE_CHUNK = 50;
export const BATCH = 100;
/** Judging a burst runs in tasks of at most this long, the host's frames in between. */
const SLICE_MS = 2;

/** The next task, soon but after the host's: scheduler.postTask where there is one, else a message. */
function nextTask(run: () => void): void {
  const scheduler = (globalThis as { scheduler?: { postTask?: (f: () => void, o: object) => Promise<unknown> } }).scheduler;
  if (typeof scheduler?.postTask === 'function') return void scheduler.postTask(run, { priority: 'user-visible' }).catch(() => undefined);
  const channel = new MessageChannel();
  channel.port1.onmessage = () => (channel.port1.close(), run());
  channel.port2.postMessage(null);
}

/** Starts the stages for one createAnalytics(), judging what its `intake` holds. `notify` hears every change of the gate's answer. */
export function startCore(opts: ResolvedOptions, notify: (state: ConsentState) => void, intake: Intake): Core {
  const catalog: Catalog = Object.freeze({ ...CATALOG, ...opts.events });
  const audit = createAudit(opts.auditCapacity);
  const sessionId = nanoid();
  const db = openStorage((upgraded) => shell.feed({ type: 'storage-lost', ...(upgraded ? { upgraded } : {}) }));
  const where = { projectKey: opts.projectKey, apiHost: opts.apiHost, sessionId, wall: Date.now };
  const st = initialState(
    { projectKey: opts.projectKey, apiHost: opts.apiHost, intervalMs: opts.flushIntervalMs, firstRunGrace: opts.firstRunGrace, respectPrivacySignals: opts.respectPrivacySignals, devBuild: opts.devBuild, force: opts.force, embedderPolicyOff: opts.embedderPolicy === 'off', sessionId, writeChunk: WRITE_CHUNK, batch: BATCH },
    clock(),
  );
  const shownId = newAnalyticsId(); // never stored nor sent: shown until the stored one is read
  // A page going away judges what it still holds now: no later task may run (a sliced burst would be lost).
  const shell = createShell(st, opts, db, where, audit, notify, () => core.take());
  const judge = createJudge(catalog, opts, audit);
  const now = () => gate({ st, signals: readSignals() }); // a meta tag added since the last change counts too

  // What was recorded is judged a slice (≤ SLICE_MS) per task of our own, never in the host's
  // task: the host's frame keeps only its record() calls. Asked for now (audit(), shutdown(), a
  // page hidden or closing: no later task may run), all of it at once.
  let slicing = false;
  const judged: (() => void)[] = []; // flush() calls waiting for a burst to be judged
  const judgeUntil = (deadline: number) => {
    const { valid, more } = judge.run(deadline);
    if (valid.length) shell.feed({ type: 'record', events: valid, uuids: valid.map(() => uuid7(Date.now())) });
    if (!more) judged.splice(0).forEach((resolve) => resolve());
    return more;
  };
  const slice = () => {
    if (slicing) return;
    slicing = true;
    nextTask(() => ((slicing = false), judgeUntil(clock() + SLICE_MS) && slice()));
  };
  const core: Core = {
    ready: shell.ready,
    take(sliced) {
      judge.drain(intake);
      if (sliced && st.page === 'shown') slice();
      else judgeUntil(Infinity);
    },
    refuse(reason) {
      intake.drain((kind, a) => void audit.add({ name: kind === 0 && typeof a === 'string' ? a.slice(0, 100) : '(native event)', outcome: 'dropped', reason }));
    },
    state: now,
    setEnabled: (enabled) => shell.ask((ask) => ({ type: 'set-choice', enabled, ask })),
    async config() {
      await shell.ready;
      const size = st.outbox.stranded ? undefined : await outboxSize(db).catch(() => undefined);
      const { enabled: on, reason } = now();
      const enabled = on && st.page !== 'closed'; // as isEnabled(): off once shut down
      const { config, known } = st.consent;
      return { analyticsId: config.analyticsId || shownId, sessionId, enabled, reason, metadata: { ...config.metadata }, storage: known.k === 'unreadable' ? 'unavailable' : 'indexeddb', delivery: deliveryStatus(st, size?.count) };
    },
    audit: () => audit.entries(),
    clear: () => (forgetLegacy(), shell.ask((ask) => ({ type: 'clear', analyticsId: newAnalyticsId(), ask }))),
    async setMetadata(props) {
      core.take(); // what was recorded before it first: the audit keeps the order of the calls
      let clean: Metadata;
      let told = 0; // what was not kept is audited, a few lines per call at most
      const refused = (what: string) => void (told++ < 8 && audit.add({ name: '(metadata)', outcome: 'dropped', reason: `setMetadata: ${what}` }));
      try {
        clean = plainMetadata(props, refused);
      } catch {
        return refused('its argument could not be read: nothing stored');
      }
      await shell.ask((ask) => ({ type: 'set-metadata', metadata: clean, ask }));
    },
    // Once what was recorded before it is judged (a slice per task), it sends.
    flush: () => (slicing ? new Promise<void>((resolve) => judged.push(resolve)) : Promise.resolve()).then(() => shell.ask((ask) => ({ type: 'flush', ask }))),
    shutdown: () => shell.ask((ask) => ({ type: 'shutdown', ask })),
    details: () => disclosure(catalog, opts.globalName),
  };
  return core;
}

/**
 * Judges what the intake holds: validated events are returned, the rest audited as dropped.
 * At most INTAKE_LIMIT per take (a native batch counts each of its events); never throws.
 */
function createJudge(catalog: Catalog, opts: ResolvedOptions, audit: ReturnType<typeof createAudit>) {
  const dropped = (name: string, reason: string) => audit.add({ name, outcome: 'dropped', reason });
  let budget = 0;
  let over = 0;
  let valid: Valid[] = [];
  const accept = (rec: Recorded) => {
    const result = validate(rec, catalog, { app_env: opts.appEnv, ...locationProps(globalThis.location?.href ?? '') });
    if (result.ok) valid.push(result.event);
    else dropped(typeof rec.name === 'string' ? rec.name.slice(0, 100) : '(no name)', result.reason);
  };
  const one = (kind: 0 | 1, a: unknown, b: unknown, time: number) => {
    try {
      if (kind === 0) {
        if (b instanceof Unreadable) throw b.error;
        if (budget-- <= 0) return void over++;
        return accept({ name: a, props: b, time });
      }
      if (a instanceof Unreadable) throw a.error;
      for (const read of fromNative(a)) {
        if (budget-- <= 0) over++;
        else if ('reason' in read) dropped(read.name, `malformed native event: ${read.reason}`);
        else accept(read);
      }
    } catch (err) {
      dropped(kind === 0 ? safeString(a).slice(0, 100) : nativeName(a), `internal error: ${safeString(err).slice(0, 200)}`);
    }
  };
  // What the intake handed over and is not judged yet: [kind, a, b, time, tick] × n, judged in
  // order. The bound (INTAKE_LIMIT) counts per tick the host recorded in, however many slices
  // judging it takes; at most 10 ticks' worth waits unjudged (past that: too many).
  let raw: unknown[] = [];
  let at = 0;
  let ticks = 0;
  let judging = -1;
  return {
    /** Takes what the intake holds (each call marked with its tick); cheap, judged later. */
    drain(intake: Intake): void {
      const tick = ++ticks;
      over += intake.drain((kind, a, b, time) => void (raw.length - at < INTAKE_LIMIT * 50 ? raw.push(kind, a, b, time, tick) : over++));
    },
    /** Judges what was drained, in order, until `deadline` (at least one). */
    run(deadline: number): { valid: Valid[]; more: boolean } {
      valid = [];
      for (let first = true; at < raw.length && (first || clock() < deadline); first = false, at += 5) {
        if (raw[at + 4] !== judging) (judging = raw[at + 4] as number), (budget = INTAKE_LIMIT); // the next tick's calls
        one(raw[at] as 0 | 1, raw[at + 1], raw[at + 2], raw[at + 3] as number);
      }
      if (at === raw.length) (raw = []), (at = 0);
      if (over) dropped(`(${over} events)`, `too many at once: more than ${INTAKE_LIMIT} recorded within one tick`), (over = 0);
      return { valid, more: at < raw.length };
    },
  };
}

function deliveryStatus(st: State, stored: number | undefined): DeliveryStatus {
  const wallOf = (mono: number) => new Date(Date.now() + (mono - clock())).toISOString();
  const retry = st.timers.retry;
  return {
    outbox: st.outbox.stranded ? 'memory' : 'indexeddb',
    ...(st.outbox.stranded ? { outboxProblem: st.outbox.stranded } : {}),
    pending: stored ?? st.outbox.known.size,
    delivering: delivers({ st, fx: [], now: clock(), wall: Date.now(), signals: readSignals(), random: 0 }),
    transport: st.transport.state,
    ...(st.transport.problem ? { transportProblem: st.transport.problem } : {}),
    ...(st.lastError ? { lastError: st.lastError } : {}),
    ...(retry !== undefined && retry > clock() ? { nextAttempt: wallOf(retry) } : {}),
  };
}

type Audit = ReturnType<typeof createAudit>;

/** The shell proper: feeds facts to the core, in order, and carries out its effects. */
function createShell(st: State, opts: ResolvedOptions, db: Storage, where: Where, audit: Audit, notify: (state: ConsentState) => void, beforeLeave: () => void) {
  const io: Io = { asks: new Map(), requests: new Map(), stopped: false };
  let queue: Input[] = [];
  let running = false;
  let nextAsk = 1;
  let becameReady!: () => void;
  const ready = new Promise<void>((resolve) => (becameReady = resolve));

  /** Every fact goes through here (a listener that calls back in is queued, not nested). */
  const feed = (input: Input) => {
    if (io.stopped && input.type === 'record') for (const e of input.events) audit.add({ name: e.name, outcome: 'dropped', reason: 'shut down' });
    if (io.stopped) return;
    queue.push(input);
    if (running) return;
    running = true;
    try {
      while (queue.length && !io.stopped) {
        const { effects } = step(st, { ...queue.shift()!, now: clock(), wall: Date.now(), signals: readSignals(), random: Math.random() } as Fact);
        if (st.consent.known.k !== 'unread') becameReady();
        for (const effect of effects) run(effect);
      }
    } finally {
      running = false;
    }
  };
  const ask = (make: (ask: number) => Input) =>
    new Promise<void>((resolve) => {
      if (io.stopped) return resolve();
      const id = nextAsk++;
      io.asks.set(id, resolve);
      feed(make(id));
    });

  const tabs = connectTabs({ changed: (m) => feed({ type: 'heard', ...m }), wrote: (flush) => feed({ type: 'wrote', flush }) });
  const page = pageEvents(feed, beforeLeave);
  const handlers = effectHandlers({ opts, db, where, audit, notify, feed, io, tabs, stop: () => stop(io, tabs, page, db) });
  const run = (e: Effect): void => {
    try {
      handlers[e.type](e as never);
    } catch {
      // an effect that cannot be carried out comes back as a fact (a timeout, a failed answer)
    }
  };
  feed({ type: 'start' });
  return { feed, ask, ready };
}

/** How long bytes already written by an aborted request are given to land (an opt-out waits for it, bounded). */
const LANDING_MS = 1000;

/** What the shell holds: promises to answer, requests to abort, the timer, the lock, posthog-js. */
interface Io {
  asks: Map<number, () => void>;
  requests: Map<number, AbortController>;
  stopped: boolean;
  timer?: ReturnType<typeof setTimeout>;
  leadership?: Leadership;
  transport?: Transport;
}

interface ShellParts {
  opts: ResolvedOptions;
  db: Storage;
  where: Where;
  audit: Audit;
  notify(state: ConsentState): void;
  feed(input: Input): void;
  io: Io;
  tabs: ReturnType<typeof connectTabs>;
  stop(): void;
}

/** Each effect, carried out; results come back as facts through `feed`. */
function effectHandlers({ opts, db, where, audit, notify, feed, io, tabs, stop }: ShellParts): { [K in Effect['type']]: (e: Extract<Effect, { type: K }>) => void } {
  return {
    storage(e) {
      const run = () => void runStorageOp(db, where, e.op).then((result) => feed({ type: 'stored', id: e.id, op: e.op, result }));
      // What moves many entries (a put or a read clones every value on the main thread) starts in a
      // task of its own; a read or change of the config (the user's choice) at once.
      const bulky = e.op.op === 'list' || e.op.op === 'remove' || e.op.op === 'add';
      if (bulky) nextTask(run);
      else run();
    },
    journal: (e) => journalLeaving(db, where.sessionId, e.entries, e.changes),
    send(e) {
      const controller = new AbortController();
      io.requests.set(e.id, controller);
      const transport = io.transport;
      if (!transport) return void feed({ type: 'answer', id: e.id, status: 0, redirected: false, quotaLimited: false, error: 'no transport' });
      // Built in a task of its own: not after the list that read it (an abort meanwhile stops it).
      // Not started past `by`: a page busy that long may have missed an opt-out elsewhere.
      nextTask(() =>
        void transport.send(e.batch, controller.signal, () => clock() <= e.by).then((answer) => {
          io.requests.delete(e.id);
          // Aborted (an opt-out): what was already written may still be on its way. Its answer, and
          // so this tab's in-flight mark that an opt-out elsewhere waits for, comes a moment later.
          const answered = () => feed({ type: 'answer', id: e.id, redirected: false, ...answer });
          if (controller.signal.aborted) setTimeout(answered, LANDING_MS);
          else answered();
        }),
      );
    },
    abort: (e) => (io.requests.get(e.id)?.abort(), io.requests.delete(e.id)),
    announce: ({ type: _, ...message }) => tabs.announce(message),
    wrote: (e) => tabs.wrote(e.flush),
    wake(e) {
      clearTimeout(io.timer);
      io.timer = e.at === undefined ? undefined : setTimeout(() => feed({ type: 'tick' }), Math.max(0, Math.ceil(e.at - clock())));
    },
    audit: (e) => audit.add(e.entry),
    'load-transport': () => void load(opts, audit, io, feed),
    lead(e) {
      io.leadership?.resign();
      io.leadership = e.lead ? lead(db, `${LOCK} ${opts.apiHost} ${opts.projectKey}`, where.sessionId, (leading) => feed({ type: 'lead', leading })) : undefined;
    },
    notify: (e) => notify(e.state),
    done: (e) => (io.asks.get(e.ask)?.(), io.asks.delete(e.ask)),
    closed: stop,
  };
}

/** posthog-js, loaded; the outcome is a fact. */
async function load(opts: ResolvedOptions, audit: Audit, io: Io, feed: (input: Input) => void): Promise<void> {
  try {
    const t = await loadTransport({ projectKey: opts.projectKey, apiHost: opts.apiHost, refused: (name) => audit.add({ name, outcome: 'dropped', reason: 'not recorded by the host (made by posthog-js)' }) });
    if (io.stopped) return t.close();
    io.transport = t;
    feed({ type: 'transport', result: 'ready' });
  } catch (err) {
    const problem = safeString(err instanceof Error ? err.message : err).slice(0, 200);
    feed({ type: 'transport', result: err instanceof UnusableTransport ? 'unusable' : err instanceof HungTransport ? 'hung' : 'failed', problem });
  }
}

/** Everything released: after shutdown() nothing leaves (a request in flight is aborted; what it carried stays stored). */
function stop(io: Io, tabs: { close(): void }, page: { remove(): void }, db: Storage): void {
  io.stopped = true;
  clearTimeout(io.timer);
  for (const c of io.requests.values()) c.abort();
  io.requests.clear();
  io.leadership?.resign();
  io.transport?.close();
  page.remove();
  tabs.close();
  db.close();
  for (const resolve of io.asks.values()) resolve();
  io.asks.clear();
}

/** The page's lifecycle, as facts: hidden (it still runs), closing (pagehide), restored from the back/forward cache, online. */
function pageEvents(feed: (input: Input) => void, beforeLeave: () => void) {
  const hidden = () => document.visibilityState === 'hidden';
  const on: [string, (e: Event) => void][] = [
    ['visibilitychange', () => (hidden() && beforeLeave(), feed({ type: 'page', page: hidden() ? 'hidden' : 'shown' }))],
    ['pagehide', () => (beforeLeave(), feed({ type: 'page', page: 'closing' }))],
    ['pageshow', (e) => (e as PageTransitionEvent).persisted && feed({ type: 'page', page: 'restored' })],
    ['online', () => feed({ type: 'online' })],
    // Another page journaled what it had not written as it went away: the delivering tab takes it in.
    ['storage', (e) => (e as StorageEvent).key?.startsWith(JOURNAL_EVENTS) && feed({ type: 'wrote', flush: false })],
  ];
  for (const [name, listener] of on) globalThis.addEventListener?.(name, listener);
  return { remove: () => on.forEach(([name, listener]) => globalThis.removeEventListener?.(name, listener)) };
}

/**
 * A UUID v7 (RFC 9562): 48 bits of milliseconds, a 12-bit counter within the millisecond (its
 * "monotonic random" method), then random. Strictly increasing in this page, so the outbox (keyed
 * by it) reads in the order events were taken. From getRandomValues (crypto.randomUUID is missing
 * outside secure contexts).
 */
let lastMs = 0;
let seq = 0;
/** Random bytes drawn 4 KB at a time: one getRandomValues call per 512 events, not per event. */
const pool = new Uint8Array(4096);
let used = pool.length;
function uuid7(now: number): string {
  let ms = Math.max(0, Math.floor(now));
  if (ms <= lastMs) {
    ms = lastMs;
    if (++seq > 0xfff) (ms = ++lastMs), (seq = 0);
  } else seq = 0;
  lastMs = ms;
  if (used + 8 > pool.length) crypto.getRandomValues(pool), (used = 0);
  const r = pool.subarray(used, (used += 8));
  r[0] = (r[0]! & 0x3f) | 0x80; // the RFC 9562 variant
  const h = bytesToHex(r);
  const t = ms.toString(16).padStart(12, '0').slice(-12);
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${seq.toString(16).padStart(3, '0')}-${h.slice(0, 4)}-${h.slice(4, 16)}`;
}
