// The model: 2–5 tabs of the pure core (src/core/step.ts) over one storage that keeps the contract
// (storage.ts), one BroadcastChannel (messages late, in order; missed by a page in the back/forward
// cache), one lock, one endpoint, a monotonic and a wall clock. Random interleavings of host calls, storage results (ok, failing, late, a full
// disk, wiped, upgraded), messages, answers (2xx, 3xx, 4xx, 429, 5xx, hangs, resets, quota),
// clock steps, crashes, pages hidden, closed, restored and left, new visits, the startup facade's
// opt-out, an older build's writes. After every step the invariants are checked; at the end the
// faults heal, and nothing consented may still wait, or have been lost without a word.
//
// I1 consent     no request carries an event recorded before an opt-out or clear its tab knows of
//                (its own; heard; or stored before one of its storage ops ran).
// I2 off         no request starts while the tab's latest known choice is off, or its own opt-out waits.
// I3 audit       at most one terminal entry per event per tab; 'sent' only after a 2xx that carried it.
// I4 no resend   a tab never sends again what its own audit ended. (Across tabs a duplicate may
//                happen, after a fault; each is counted: `World.duplicates`.)
// I5 liveness    once faults heal, nothing consented waits: in storage, in a tab, or in a journal.
// I6 bounds      every queue is bounded; no wake-up is in the past.
// I7 no loss     every event recorded after the last cut ends somewhere: received, or dropped or
//                unconfirmed in some tab's audit — unless only a crashed tab's memory held it.
// I8 settled     an opt-out or clear() resolves only once no other tab still has a request on
//                its way that carries what was recorded before it — or 3 s after it was stored.
import { expect } from 'vitest';
import type { Valid } from '../../src/2-validate';
import { expired, MARK_MS, MARK_SEND_MS, type OutboxEntry, type StorageOp, type StorageResult } from '../../src/core/contract';
import { gate, initialState, step } from '../../src/core/step';
import type { Effect, Fact, Input, State } from '../../src/core/types';
import { ContractStore } from './storage';

export type Action =
  | { a: 'record'; tab: number; n: number }
  | { a: 'choice'; tab: number; enabled: boolean }
  | { a: 'clear'; tab: number }
  | { a: 'metadata'; tab: number; keys: number }
  | { a: 'flush'; tab: number }
  | { a: 'storage'; tab: number; ok: boolean; late?: boolean }
  | { a: 'message'; tab: number; lose: boolean }
  | { a: 'arrive'; tab: number }
  | { a: 'answer'; tab: number; status: number }
  | { a: 'advance'; ms: number }
  | { a: 'clock'; ms: number }
  | { a: 'crash'; tab: number }
  | { a: 'page'; tab: number; page: 'hidden' | 'shown' | 'closing' | 'restored' }
  | { a: 'leave'; tab: number }
  | { a: 'open' }
  | { a: 'transport'; tab: number; result: 'ready' | 'failed' | 'hung' }
  | { a: 'wipe' }
  | { a: 'upgrade' }
  | { a: 'full'; on: boolean }
  | { a: 'facade-off' }
  | { a: 'legacy'; n: number }
  | { a: 'gpc'; on: boolean };

interface Req {
  batch: string[];
  arrived: boolean;
  aborted?: boolean;
  /** When it started (monotonic). */
  at: number;
}

interface PendingOp {
  id: number;
  op: StorageOp;
  /** The cuts of this tab's calls that the op stores (a change with cutAt). */
  cuts: number[];
  /** Its transaction ran: its result has not reached the tab yet. */
  ran?: { result: StorageResult; knows: number[]; choice: Choice };
}

/** A stored choice, numbered in the order it was stored, and which tab stored it (-1: none of the model's). */
interface Choice {
  seq: number;
  value: 'enabled' | 'disabled' | 'unset';
  by: number;
}

export interface Tab {
  n: number;
  sid: string;
  st: State;
  alive: boolean;
  ops: PendingOp[];
  reqs: Map<number, Req>;
  inbox: (Input & { choiceSeq?: Choice })[];
  wakeAt?: number;
  loading: boolean;
  terminal: Map<string, string>;
  /** Cuts this tab knows of (indexes in World.cuts). */
  knows: Set<number>;
  /** Its opt-out and clear calls whose cut is not stored yet. */
  pendingCuts: number[];
  /** The change ids it journaled as it left (its next journal replaces them). */
  left: string[];
  /** The newest stored choice it knows of (I2). */
  choice: Choice;
  /**
   * Its latest own choice call, and the number of the stored choice when it was made (I2); made
   * before the tab first read storage (-1), it counts as made after what that read found.
   */
  own?: { value: 'enabled' | 'disabled'; seq: number };
  /**
   * It heard an opt-out (stored or not: a tab whose write failed still announces it): off until it
   * hears an opt-in, or stores a choice of its own (I2).
   */
  heardOff: boolean;
}

export interface World {
  mono: number;
  wallOffset: number;
  /** When (monotonic) the wall clock was last set forward. */
  forwardAt: number;
  gpc: boolean;
  store: ContractStore;
  tabs: Tab[];
  lockHolder?: number;
  lockQueue: number[];
  received: Set<string>;
  /** uuids answered 2xx. */
  delivered: Set<string>;
  /** Requests that carried an event already received: allowed after a fault, and counted. */
  duplicates: number;
  /** Each opt-out or clear call: the uuids recorded before it; whether it is stored, and when. */
  cuts: { before: Set<string>; stored: boolean; at?: number }[];
  /** The host's opt-out and clear calls: their ask, and their cut (I8). */
  asks: Map<number, number>;
  /** How many cuts there were when site data was last wiped (a read after it cannot know them). */
  wiped: number;
  /** When it was (monotonic). */
  wipedAt: number;
  /** The stored choice, numbered. */
  choice: Choice;
  uuids: number;
  ids: number;
  recorded: Set<string>;
  /** Every uuid that was ever in storage or a journal (durable), and where every event ended up. */
  durable: Set<string>;
  ended: Set<string>;
  /**
   * Events that may end without a word: recorded before the site's data was wiped; held by a page
   * that left before it read the stored choice; only in the memory of a tab that crashed.
   */
  exempt: Set<string>;
}

const wall = (w: World) => 1_800_000_000_000 + w.mono + w.wallOffset;
const SETTINGS = (sid: string) => ({ projectKey: 'phc_model', apiHost: 'https://example.test', intervalMs: 50, firstRunGrace: false, respectPrivacySignals: true, devBuild: false, force: true, embedderPolicyOff: false, sessionId: sid, writeChunk: 2, batch: 3 }); // small: writes, removals, lists and requests go in several steps
const MAX_TABS = 5;
const event = (w: World): Valid => ({ kind: 'Append', name: 'settings-opened', props: {}, time: wall(w), bytes: 2 });

export function newWorld(tabs: number): World {
  const w: World = {
    mono: 0,
    wallOffset: 0,
    forwardAt: -Infinity,
    gpc: false,
    store: undefined as unknown as ContractStore,
    tabs: [],
    lockQueue: [],
    received: new Set(),
    delivered: new Set(),
    duplicates: 0,
    cuts: [],
    asks: new Map(),
    wiped: 0,
    wipedAt: -Infinity,
    choice: { seq: 0, value: 'unset', by: -1 },
    uuids: 0,
    ids: 0,
    recorded: new Set(),
    durable: new Set(),
    ended: new Set(),
    exempt: new Set(),
  };
  w.store = new ContractStore(() => `id${w.ids++}`, () => wall(w));
  for (let i = 0; i < tabs; i++) openTab(w);
  return w;
}

function openTab(w: World): Tab {
  const sid = `s${w.tabs.length}`;
  const st = initialState(SETTINGS(sid), w.mono);
  const tab: Tab = { n: w.tabs.length, sid, st, alive: true, ops: [], reqs: new Map(), inbox: [], loading: false, terminal: new Map(), knows: new Set(), pendingCuts: [], left: [], choice: { seq: -1, value: 'unset', by: -1 }, heardOff: false };
  w.tabs.push(tab);
  feed(w, tab, { type: 'start' });
  return tab;
}

// ---- the simulated shell ----------------------------------------------------------------------

/** As the shell does: a fact that arrives while a step's effects are carried out waits for them. */
const queue: [World, Tab, Input][] = [];
let feeding = false;
function feed(w: World, tab: Tab, input: Input): void {
  queue.push([w, tab, input]);
  if (feeding) return;
  feeding = true;
  try {
    while (queue.length) stepTab(...queue.shift()!);
  } finally {
    feeding = false;
    queue.length = 0;
  }
}

function stepTab(w: World, tab: Tab, input: Input): void {
  if (!tab.alive) return;
  const fact = { ...input, now: w.mono, wall: wall(w), signals: { privacySignal: w.gpc, automation: false, embedderForbids: false }, random: 0.5 } as Fact;
  const { effects } = step(tab.st, fact);
  if (process.env.MODEL_TRACE) trace(w, tab, input, effects);
  for (const e of effects) effect(w, tab, e);
  checkTab(w, tab, effects);
}

function trace(w: World, tab: Tab, input: Input, effects: Effect[]): void {
  const st = tab.st;
  const fx = effects.filter((e) => e.type !== 'wake').map((e) => (e.type === 'storage' ? `storage:${e.op.op}` : e.type));
  console.log(`t${tab.n} @${w.mono}`, input.type, JSON.stringify(input).slice(0, Number(process.env.MODEL_TRACE_WIDTH ?? 140)), '→', fx.join(','), `lead=${st.lead} known=${st.consent.known.k} tr=${st.transport.state} own=${st.outbox.unwritten.length}/${st.outbox.known.size} pass=${st.pass} timers=${JSON.stringify(st.timers)}`);
}

function effect(w: World, tab: Tab, e: Effect): void {
  switch (e.type) {
    case 'storage':
      tab.ops.push({ id: e.id, op: e.op, cuts: e.op.op === 'change' && e.op.change.cutAt !== undefined ? tab.pendingCuts.splice(0) : [] });
      return;
    case 'journal': {
      // Replaced (back from the cache, it holds them again): what only that journal kept is in memory alone again.
      const kept = new Set(e.entries.map((x) => x.uuid));
      for (const x of w.store.journalEvents.get(tab.sid) ?? []) if (!kept.has(x.uuid) && !w.store.outbox.has(x.uuid)) w.durable.delete(x.uuid);
      w.store.journal(tab.sid, e.entries);
      for (const id of tab.left) if (!e.changes.some((ch) => ch.id === id)) w.store.journalChanges.delete(id); // replaced: what it journaled as it left before
      tab.left = e.changes.map((ch) => ch.id);
      e.changes.forEach(({ id, change }) => w.store.journalChange(id, change));
      if (e.changes.length) {
        // Visible to every read now: the cuts not yet written, and those of a change op still under way.
        const under = tab.ops.filter((o) => !o.ran && e.changes.some((ch) => o.op.op === 'change' && ch.id === o.op.id)).flatMap((o) => o.cuts);
        for (const i of [...tab.pendingCuts.splice(0), ...under]) if (!w.cuts[i]!.stored) Object.assign(w.cuts[i]!, { stored: true, at: w.mono });
      }
      if (e.changes.some((ch) => ch.change.choice === 'disabled')) w.choice = { seq: w.choice.seq + 1, value: 'disabled', by: tab.n };
      e.entries.forEach((x) => w.durable.add(x.uuid));
      for (const t of w.tabs) if (t !== tab && listening(t)) t.inbox.push({ type: 'wrote', flush: false }); // localStorage's storage event
      return;
    }
    case 'send':
      return send(w, tab, e.id, e.batch.map((x) => x.uuid));
    case 'abort': {
      const req = tab.reqs.get(e.id);
      if (req) req.aborted = true; // it may still arrive; answered with no status
      return;
    }
    case 'announce':
      return broadcast(w, tab, { ...e, type: 'heard' });
    case 'wrote':
      return broadcast(w, tab, { type: 'wrote', flush: e.flush });
    case 'wake':
      tab.wakeAt = e.at;
      return;
    case 'audit':
      return audited(w, tab, e.entry);
    case 'load-transport':
      tab.loading = true;
      return;
    case 'lead':
      return lock(w, tab, e.lead);
    case 'closed':
      return release(w, tab);
    case 'done':
      return settled(w, tab, e.ask);
    default:
      return;
  }
}

/** I8: the host is told its opt-out or clear is done: no other tab may still have on its way what came before it (3 s at most). */
function settled(w: World, tab: Tab, ask: number): void {
  const cut = w.asks.get(ask);
  const c = cut === undefined ? undefined : w.cuts[cut];
  if (!c?.stored || w.mono - c.at! >= 3000) return; // not stored (its failure said so), or its wait ran out
  for (const t of w.tabs) {
    if (t === tab || !t.alive) continue;
    for (const r of t.reqs.values()) if (!markLost(w, t, r)) for (const u of r.batch) expect(c.before.has(u), `I8: tab ${tab.n}'s opt-out or clear resolved while tab ${t.n}'s request carrying ${u}, recorded before it, was on its way`).toBe(false);
  }
}

/**
 * Known limits, exempted from I8: the opt-out does not wait for a request whose mark is gone
 * without its tab (marks are written at most MARK_SEND_MS before a request starts) — the site's data
 * was cleared while it flew, or the wall clock (marks are dated on it: tabs share no other) was
 * set forward past its expiry since its mark was written (set back, then forward again, counts).
 * The flying tab still aborts it when it hears the opt-out.
 */
function markLost(w: World, t: Tab, r: Req): boolean {
  const mark = w.store.marks.get(t.sid);
  const clockSet = !(mark && mark.until > wall(w)) && w.mono - r.at < MARK_MS - MARK_SEND_MS && w.forwardAt >= r.at - MARK_SEND_MS;
  return clockSet || w.wipedAt >= r.at - MARK_SEND_MS;
}

function receive(w: World, uuid: string): void {
  if (w.received.has(uuid)) w.duplicates++;
  w.received.add(uuid);
}

function send(w: World, tab: Tab, id: number, uuids: string[]): void {
  checkRequest(w, tab, uuids);
  tab.reqs.set(id, { batch: uuids, arrived: false, at: w.mono });
}

/** I1, I2, I4 at the moment a request starts. */
function checkRequest(w: World, tab: Tab, uuids: string[]): void {
  expect(gate({ st: tab.st, signals: { privacySignal: w.gpc, automation: false, embedderForbids: false } }).enabled, `I2: tab ${tab.n} sends while its gate is off`).toBe(true);
  // The newest choice it knows: its own latest call, unless another tab's stored after it is newer.
  const { own, choice } = tab;
  const newest = own && (choice.by === tab.n || choice.seq <= own.seq) ? own.value : choice.value;
  expect(newest, `I2: tab ${tab.n} sends while the newest choice it knows is off (stored #${choice.seq} by t${choice.by}: ${choice.value}; its own: ${own?.value})`).not.toBe('disabled');
  expect(tab.heardOff, `I2: tab ${tab.n} sends after it heard an opt-out, with no opt-in heard or choice of its own stored since`).toBe(false);
  for (const cut of tab.knows) for (const u of uuids) expect(w.cuts[cut]!.before.has(u), `I1: tab ${tab.n} sends ${u}, recorded before cut ${cut}, which it knows of`).toBe(false);
  for (const u of uuids) expect(tab.terminal.has(u), `I4: tab ${tab.n} sends ${u} again, which its audit ended (${tab.terminal.get(u)})`).toBe(false);
}

function audited(w: World, tab: Tab, entry: { outcome: string; uuid?: string; reason?: string }): void {
  if (!entry.uuid) return;
  // I3: one terminal entry per event in a tab's audit; "sent" only after a 2xx that carried it.
  expect(tab.terminal.get(entry.uuid), `I3: ${entry.uuid} audited twice in tab ${tab.n} (${entry.outcome}: ${entry.reason})`).toBeUndefined();
  tab.terminal.set(entry.uuid, entry.outcome);
  w.ended.add(entry.uuid);
  if (entry.outcome === 'sent') expect(w.delivered.has(entry.uuid), `I3: ${entry.uuid} audited sent without a 2xx`).toBe(true);
}

function broadcast(w: World, from: Tab, input: Input): void {
  for (const t of w.tabs) if (t !== from && listening(t)) t.inbox.push({ ...input, choiceSeq: w.choice });
}

/**
 * Whether a message posted now reaches the tab. BroadcastChannel (and the storage event) queue a
 * message for every live page, however busy (late, in order, never lost); a page in the
 * back/forward cache (closing, not gone) is not fully active and misses what is posted meanwhile.
 */
const listening = (t: Tab) => t.alive && t.st.page !== 'closing';

function lock(w: World, tab: Tab, want: boolean): void {
  if (!want) return release(w, tab);
  if (w.lockHolder === undefined) {
    w.lockHolder = tab.n;
    return feed(w, tab, { type: 'lead', leading: true });
  }
  if (w.lockHolder !== tab.n && !w.lockQueue.includes(tab.n)) w.lockQueue.push(tab.n);
  feed(w, tab, { type: 'lead', leading: false });
}

function release(w: World, tab: Tab): void {
  w.lockQueue = w.lockQueue.filter((n) => n !== tab.n);
  if (w.lockHolder !== tab.n) return;
  w.lockHolder = undefined;
  const next = w.lockQueue.shift();
  if (next === undefined) return;
  w.lockHolder = next;
  feed(w, w.tabs[next]!, { type: 'lead', leading: true });
}

// ---- storage ------------------------------------------------------------------------------------

/** Runs the tab's oldest op; `late`: its result reaches the tab at a later step (others may write and post meanwhile). */
function completeStorage(w: World, tab: Tab, ok: boolean, late = false): void {
  const next = tab.ops[0];
  if (!next) return;
  if (!next.ran) {
    const cutsBefore = w.cuts.length;
    // A change already applied from its journaled copy (its page closed, then lived on): stored, it does nothing.
    const op = next.op;
    const already = op.op === 'change' && op.id !== undefined && (w.store.config?.applied?.includes(op.id) === true || w.store.journalChanges.has(op.id));
    const result = ok ? w.store.run(next.op, { sessionId: tab.sid, projectKey: 'phc_model', apiHost: 'https://example.test' }) : { ok: false, error: 'injected' };
    if (result.ok && !already) stored(w, tab, next, result);
    // Whatever it read was written after every earlier stored cut (but those wiped before it).
    const knows = result.ok ? range(w.wiped, cutsBefore).filter((i) => w.cuts[i]!.stored) : [];
    next.ran = { result, knows, choice: w.choice };
    if (late) return;
  }
  tab.ops.shift();
  const { result, knows, choice } = next.ran;
  if (result.ok) {
    knows.forEach((i) => tab.knows.add(i));
    learn(tab, choice);
    if (next.op.op === 'change' && next.op.change.choice) tab.heardOff = false; // its own choice, stored after what it heard
  }
  feed(w, tab, { type: 'stored', id: next.id, op: next.op, result });
}

/** What the op's transaction stored, as the model counts it: cuts, choices, durable events. */
function stored(w: World, tab: Tab, op: PendingOp, result: StorageResult): void {
  if (op.op.op === 'change') {
    const { change } = op.op;
    if (change.cutAt !== undefined) {
      for (const i of op.cuts) Object.assign(w.cuts[i]!, { stored: true, at: w.mono });
    }
    if (change.choice) w.choice = { seq: w.choice.seq + 1, value: change.choice, by: tab.n };
  }
  if (op.op.op === 'add') {
    const refused = new Set(result.refused?.map((e) => e.uuid));
    for (const e of op.op.entries) if (!refused.has(e.uuid)) w.durable.add(e.uuid);
  }
}

function learn(tab: Tab, choice: Choice): void {
  if (tab.own?.seq === -1) tab.own.seq = choice.seq; // its first read
  if (choice.seq > tab.choice.seq) tab.choice = choice;
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

// ---- actions --------------------------------------------------------------------------------

export function act(w: World, x: Action): void {
  const tab = 'tab' in x ? w.tabs[x.tab % w.tabs.length]! : undefined;
  if (process.env.MODEL_TRACE) console.log(`-- ${JSON.stringify(x)}${tab ? ` (t${tab.n}${tab.alive ? '' : ', gone'})` : ''}`);
  if (tab && !tab.alive) return;
  switch (x.a) {
    case 'record': {
      const uuids = Array.from({ length: x.n }, () => `u${String(w.uuids++).padStart(6, '0')}`);
      for (const u of uuids) w.recorded.add(u);
      return feed(w, tab!, { type: 'record', events: uuids.map(() => event(w)), uuids });
    }
    case 'choice':
      if (!x.enabled) w.asks.set(w.ids, cut(w, tab!));
      tab!.own = { value: x.enabled ? 'enabled' : 'disabled', seq: !tab!.st.consent.everRead && x.enabled ? -1 : w.choice.seq };
      return feed(w, tab!, { type: 'set-choice', enabled: x.enabled, ask: w.ids++ });
    case 'clear':
      w.asks.set(w.ids + 1, cut(w, tab!));
      return feed(w, tab!, { type: 'clear', analyticsId: `id${w.ids++}`, ask: w.ids++ });
    case 'metadata':
      return feed(w, tab!, { type: 'set-metadata', metadata: Object.fromEntries(Array.from({ length: x.keys }, (_, i) => [`k${w.ids}_${i}`, i])), ask: w.ids++ });
    case 'flush':
      return feed(w, tab!, { type: 'flush', ask: w.ids++ });
    case 'storage':
      return completeStorage(w, tab!, x.ok, x.late);
    case 'message':
      return message(w, tab!, x.lose);
    case 'arrive': {
      const [, req] = [...tab!.reqs][0] ?? [];
      if (req && !req.arrived) {
        req.arrived = true;
        req.batch.forEach((u) => receive(w, u));
      }
      return;
    }
    case 'answer':
      return answer(w, tab!, x.status);
    case 'advance':
      return advance(w, x.ms);
    case 'clock':
      w.wallOffset += x.ms;
      if (x.ms > 0) w.forwardAt = w.mono;
      return;
    case 'crash':
      return gone(w, tab!, true);
    case 'leave':
      feed(w, tab!, { type: 'page', page: 'closing' });
      return gone(w, tab!, false);
    case 'open':
      if (w.tabs.length < MAX_TABS) openTab(w);
      return;
    case 'page':
      return feed(w, tab!, { type: 'page', page: x.page });
    case 'transport':
      if (!tab!.loading) return;
      tab!.loading = false;
      return feed(w, tab!, { type: 'transport', result: x.result });
    case 'wipe':
      w.wiped = w.cuts.length;
      w.wipedAt = w.mono;
      w.recorded.forEach((u) => w.exempt.add(u));
      w.store = Object.assign(new ContractStore(() => `id${w.ids++}`, () => wall(w)), { full: w.store.full, journalEvents: new Map(), journalChanges: new Map() });
      w.choice = { seq: w.choice.seq + 1, value: 'unset', by: -1 };
      return w.tabs.forEach((t) => feed(w, t, { type: 'storage-lost' }));
    case 'upgrade':
      return w.tabs.forEach((t) => feed(w, t, { type: 'storage-lost', upgraded: true }));
    case 'full':
      w.store.full = x.on;
      return;
    case 'facade-off':
      return facadeOptOut(w);
    case 'legacy':
      return legacyWrites(w, x.n);
    case 'gpc':
      w.gpc = x.on;
      return;
  }
}

/** The tab handles its oldest message — or, `busy`, not yet (a message is never lost: see listening()). */
function message(w: World, tab: Tab, busy: boolean): void {
  if (busy) return;
  const m = tab.inbox.shift();
  if (!m) return;
  const { choiceSeq, ...input } = m;
  if (input.type === 'heard' && input.choice === 'disabled') tab.heardOff = true;
  if (input.type === 'heard' && input.change === 'choice' && input.choice === 'enabled') tab.heardOff = false;
  if (input.type === 'heard') {
    if (input.choice === 'disabled' || input.change === 'clear' || input.emptied) range(w.wiped, w.cuts.length).forEach((i) => w.cuts[i]!.stored && tab.knows.add(i));
    if (input.change === 'choice' || input.choice === 'disabled') learn(tab, choiceSeq!);
  }
  feed(w, tab, input);
}

/** A crash (nothing more runs) or a page that left after pagehide: its ops die, its requests may have landed. */
function gone(w: World, tab: Tab, crashed: boolean): void {
  tab.alive = false;
  for (const r of tab.reqs.values()) if (r.arrived) r.batch.forEach((u) => receive(w, u));
  const memory = [...tab.st.held.map((h) => h.uuid), ...(crashed ? [...tab.st.outbox.unwritten, ...tab.ops.flatMap((o) => (o.op.op === 'add' && !o.ran?.result.ok ? o.op.entries : []))].map((e) => e.uuid) : [])];
  for (const u of memory) if (!w.durable.has(u)) w.exempt.add(u); // held: never judged, the page went before it could
  // What its storage ops ended (emptied, evicted, refused) whose results it never heard: only it could have said so.
  for (const o of tab.ops) for (const e of [...(o.ran?.result.dropped ?? []), ...(o.ran?.result.refused ?? [])]) w.exempt.add(e.uuid);
  release(w, tab);
}

/** The startup facade's opt-out, in a page whose stages are not there: journaled, then announced as ending what came before. */
function facadeOptOut(w: World): void {
  w.cuts.push({ before: new Set(w.recorded), stored: true, at: w.mono });
  w.store.journalChange(`f${w.ids++}`, { choice: 'disabled', choiceTime: new Date(wall(w)).toISOString(), cutAt: wall(w) });
  w.choice = { seq: w.choice.seq + 1, value: 'disabled', by: -1 };
  for (const t of w.tabs) if (listening(t)) t.inbox.push({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true, choiceSeq: w.choice });
}

/** A tab of an older build writes events to its own store, under the stored id and cut. */
function legacyWrites(w: World, n: number): void {
  const c = w.store.config;
  if (!c || c.choice === 'disabled') return;
  for (let i = 0; i < n; i++) {
    const uuid = `u${String(w.uuids++).padStart(6, '0')}`;
    w.recorded.add(uuid);
    w.durable.add(uuid);
    const e: OutboxEntry = { uuid, projectKey: 'phc_model', apiHost: 'https://example.test', kind: 'Append', name: 'settings-opened', props: {}, at: wall(w), queuedAt: wall(w), distinctId: c.analyticsId, sessionId: 'old', cut: c.cut ?? 0, bytes: 300 };
    w.store.legacy.set(uuid, e);
  }
  for (const t of w.tabs) if (listening(t)) t.inbox.push({ type: 'wrote', flush: false }); // as an older build's tab says, on the same channel
}

function cut(w: World, tab: Tab): number {
  w.cuts.push({ before: new Set(w.recorded), stored: false }); // known to the calling tab only, until stored
  tab.pendingCuts.push(w.cuts.length - 1);
  tab.knows.add(w.cuts.length - 1);
  return w.cuts.length - 1;
}

function answer(w: World, tab: Tab, status: number): void {
  const [id, req] = [...tab.reqs][0] ?? [];
  if (id === undefined || !req) return;
  if (status === -1) return; // hangs: the shell's own timeout answers later (status 0)
  tab.reqs.delete(id);
  if (req.aborted) status = 0; // fetch rejects an aborted request, whatever reached the endpoint
  const quota = status === 1; // 200 with {"quota_limited": ["events"]}
  if (quota) status = 200;
  const ok = status >= 200 && status < 300;
  if ((ok || req.arrived) && !req.arrived) req.batch.forEach((u) => receive(w, u));
  if (ok) req.batch.forEach((u) => w.delivered.add(u));
  feed(w, tab, { type: 'answer', id, status, redirected: false, quotaLimited: quota });
}

export function advance(w: World, ms: number): void {
  const end = w.mono + ms;
  for (;;) {
    const due = w.tabs.filter((t) => t.alive && t.wakeAt !== undefined && t.wakeAt <= end).sort((a, b) => a.wakeAt! - b.wakeAt!)[0];
    if (!due) break;
    w.mono = Math.max(w.mono, due.wakeAt!);
    due.wakeAt = undefined;
    feed(w, due, { type: 'tick' });
  }
  w.mono = end;
}

// ---- invariants --------------------------------------------------------------------------------

function checkTab(w: World, tab: Tab, effects: Effect[]): void {
  const { st } = tab;
  // I6: every bound holds.
  expect(st.outbox.unwritten.length, 'I6: unwritten').toBeLessThanOrEqual(1000);
  expect(st.held.length, 'I6: held').toBeLessThanOrEqual(500);
  expect(st.outbox.known.size, 'I6: known').toBeLessThanOrEqual(1100);
  expect(st.outbox.ended.size, 'I6: ended').toBeLessThanOrEqual(2200);
  expect(st.changes.length, 'I6: changes').toBeLessThanOrEqual(3);
  expect(Object.keys(st.consent.config.metadata).length, 'I6: metadata').toBeLessThanOrEqual(64);
  expect(w.store.outbox.size, 'I6: outbox').toBeLessThanOrEqual(1000 + SETTINGS('').batch);
  // No busy loop: a wake is always ahead of the step that asked for it.
  for (const e of effects) if (e.type === 'wake' && e.at !== undefined) expect(e.at, 'I6: a wake-up in the past').toBeGreaterThan(w.mono);
}

/** Faults healed, consent on, every message, storage op, load and request done: then nothing consented may still wait (I5), nor be lost (I7). */
export function heal(w: World): void {
  w.gpc = false;
  w.store.full = false;
  for (const t of w.tabs) feed(w, t, { type: 'tick' }); // a signal is read at the next fact: this one
  for (let round = 0; round < 600; round++) {
    let busy = false;
    for (const t of w.tabs) {
      if (!t.alive) continue;
      while (t.inbox.length) {
        busy = true;
        message(w, t, false);
      }
      if (t.ops.length) {
        busy = true;
        completeStorage(w, t, true);
      }
      if (t.loading) {
        busy = true;
        act(w, { a: 'transport', tab: t.n, result: 'ready' });
      }
      if (t.reqs.size) {
        busy = true;
        answer(w, t, 200);
      }
    }
    if (busy) continue;
    const next = Math.min(...w.tabs.filter((t) => t.alive && t.wakeAt !== undefined).map((t) => t.wakeAt!));
    if (next === Infinity) break;
    advance(w, next - w.mono);
  }
  const live = w.tabs.filter((t) => t.alive && t.st.page !== 'closed' && t.st.page !== 'closing');
  const signals = { privacySignal: false, automation: false, embedderForbids: false };
  const sender = live.find((t) => gate({ st: t.st, signals }).enabled && t.st.transport.state !== 'hung' && t.st.transport.state !== 'unusable');
  const off = w.store.config?.choice === 'disabled';
  if (sender && !off) {
    // I5: what waits in storage (or a journal) under the stored id has left; no live tab still holds anything.
    const id = w.store.config?.analyticsId;
    const waiting = [...w.store.outbox.values(), ...[...w.store.journalEvents.values()].flat()].filter((e) => e.distinctId === id && e.cut === (w.store.config?.cut ?? 0) && !expired(e, wall(w)));
    expect(waiting.map((e) => e.uuid), 'I5: still waiting in storage after healing').toEqual([]);
    for (const t of live) if (gate({ st: t.st, signals }).enabled && t.st.transport.state !== 'hung') expect([...t.st.outbox.known.keys(), ...t.st.outbox.unwritten.map((e) => e.uuid)], `I5: tab ${t.n} still holds`).toEqual([]);
    // I7: nothing recorded after the last cut vanished without a word.
    const lastCut = w.cuts.at(-1)?.before ?? new Set<string>();
    const after = [...w.recorded].filter((u) => !lastCut.has(u) && !inLaterCut(w, u));
    const silent = after.filter((u) => !w.received.has(u) && !w.ended.has(u) && !w.exempt.has(u) && !heldByDeadOrHung(w, u));
    expect(silent, 'I7: recorded after the last cut, consented, and neither received nor ended in any audit').toEqual([]);
  }
}

/** Recorded before some cut (any): its fate is consent's, not delivery's. */
const inLaterCut = (w: World, u: string) => w.cuts.some((c) => c.before.has(u));

/** Still held by a tab that cannot send (hung transport, closed page): not lost, waiting. */
function heldByDeadOrHung(w: World, u: string): boolean {
  return w.tabs.some((t) => t.alive && (t.st.outbox.known.has(u) || t.st.outbox.unwritten.some((e) => e.uuid === u) || t.st.held.some((h) => h.uuid === u)));
}

/** One run: the actions, the invariants after each step, then healing and liveness. */
export function run(tabs: number, actions: Action[]): World {
  const w = newWorld(tabs);
  for (const x of actions) act(w, x);
  heal(w);
  return w;
}
