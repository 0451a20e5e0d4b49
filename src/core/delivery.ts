// Delivery in the pure core: accepted events are written to the shared outbox; one tab (the
// leader) lists and sends it; a request's answer ends what it carried: sent (a 2xx that was not a
// redirect), refused (4xx), or retried later. What only this tab holds (never written: its writes
// fail, or its page is leaving), it sends itself.
import { userSaidNo } from '../3-consent-gate.js';
import type { Valid } from '../2-validate.js';
import { allowListed } from '../5-allow-list.js';
import { expired, NOT_BEFORE_MAX_MS, OUTBOX_LIMITS, OUTBOX_TTL_MS, refuses, type ConfigChange, type OutboxEntry, type StorageOp, type StorageResult } from './contract.js';
import { announceUnstored, gate } from './consent.js';
import { dropHeld, dropRef, sent } from './outcomes.js';
import { arm, backoff } from './timers.js';
import type { Change, Held, State, Step } from './types.js';

/** Events recorded before the stored choice is read wait for it, at most this many. */
export const HOLD_CAPACITY = 500;
/** How far the wall clock may drift from the monotonic one while an event is held, before it counts as set. */
const CLOCK_SLACK_MS = 1000;
/** The least a 429 waits (posthog-js caps a Retry-After header at this). */
export const RATE_LIMITED_MS = 30_000;
/** PostHog's quota answer holds for a minute. */
export const QUOTA_MS = 60_000;
/** A request not started this long after it was decided is not started: its tab was busy, and an opt-out elsewhere may have settled meanwhile. */
export const START_MS = 1000;
export const FULL = 'outbox full: the oldest waiting events are dropped';
/** Attempts counted per event, at most this many events (what another tab delivered is never ended here). */
const ATTEMPTS_KEPT = 2200;

type Add = StorageOp & { op: 'add' };

/** First-run grace: the very first page load of this browser's id sends nothing. */
export const inGrace = ({ st }: Step) => st.s.firstRunGrace && st.consent.config.firstSessionId === st.s.sessionId;
/** The page runs (hidden still runs): not leaving, not shut down. */
export const live = (st: State) => st.page === 'shown' || st.page === 'hidden';
/** This tab may send now: consent on, not leaving, not in grace, and it leads (or holds what only it has). */
export const delivers = (c: Step) => live(c.st) && gate(c).enabled && !inGrace(c) && (c.st.lead === 'leading' || c.st.outbox.stranded !== undefined);
/** The entries of the write under way: only this tab holds them until it succeeds. */
export const writing = (st: State): OutboxEntry[] => (st.io?.op.op === 'add' ? st.io.op.entries : []);

// ---- accepting -----------------------------------------------------------------------------------

export function onRecord(c: Step, events: Valid[], uuids: string[]): void {
  const kept: OutboxEntry[] = [];
  events.forEach((event, i) => {
    const entry = admit(c, event, uuids[i]!);
    if (entry) kept.push(entry);
  });
  if (c.st.page === 'closing' && kept.length) journal(c); // recorded in the host's own pagehide handler
}

/** The consent gate, asked for one validated event: kept, held until the choice is read, or dropped. */
function admit(c: Step, event: Valid, uuid: string, early = false): OutboxEntry | undefined {
  const { st } = c;
  const ref = { uuid, kind: event.kind, name: event.name };
  const state = gate(c);
  if (st.asks.shutdown === undefined && state.enabled) return keep(c, event, uuid, early); // closed: step() answers nothing
  if (st.asks.shutdown !== undefined) dropRef(c, ref, 'shut down', false);
  else if (state.reason !== 'loading') dropRef(c, ref, state.reason, false);
  else if (st.held.length >= HOLD_CAPACITY) dropRef(c, ref, `too many at once: more than ${HOLD_CAPACITY} recorded before the stored choice was read`, false);
  else st.held.push({ event, uuid, now: c.now, wall: c.wall });
  return undefined;
}

/** Held events go on (or end) once the gate answers something other than 'loading'. */
export function release(c: Step): void {
  if (!c.st.held.length || gate(c).reason === 'loading') return;
  dropBefore(c);
  for (const h of c.st.held.splice(0)) admit(c, h.event, h.uuid, true); // judged by the clock alone (below)
}

/** Held events recorded before the last opt-out or clear this tab knows of end here, each with the reason. */
function dropBefore(c: Step): void {
  const { st } = c;
  dropHeld(c, st.held.filter((h) => before(c, h)), 'recorded before the last opt-out or clear');
  st.held = st.held.filter((h) => !before(c, h));
}

/** Recorded before the last opt-out or clear it waited to learn of — or unsure, because the clock was set meanwhile. */
function before(c: Step, h: Held): boolean {
  const cutAt = c.st.consent.config.cutAt;
  const clockSet = Math.abs(c.wall - h.wall - (c.now - h.now)) > CLOCK_SLACK_MS;
  return cutAt !== undefined && (clockSet || h.event.time <= cutAt);
}

/** Stamped with the id and cut it is accepted under, to be written. */
function keep(c: Step, e: Valid, uuid: string, early: boolean): OutboxEntry {
  const { st } = c;
  const entry = stamp(c, e, uuid, early);
  st.outbox.unwritten.push(entry);
  st.outbox.known.set(uuid, entry);
  // More than the outbox holds, waiting for one write: the oldest would be evicted by it anyway.
  if (st.outbox.unwritten.length > OUTBOX_LIMITS.count) dropRef(c, st.outbox.unwritten.shift()!, FULL, false);
  st.timers.pass ??= c.now + st.s.intervalMs;
  return entry;
}

/** An event as the outbox keeps it: under the id and cut this tab knows. */
function stamp(c: Step, e: Valid, uuid: string, early: boolean): OutboxEntry {
  const { st } = c;
  const { analyticsId, cut } = st.consent.config;
  const entry: OutboxEntry = {
    uuid,
    projectKey: st.s.projectKey,
    apiHost: st.s.apiHost,
    kind: e.kind,
    name: e.name,
    props: e.props,
    at: e.time,
    queuedAt: c.wall,
    distinctId: analyticsId,
    sessionId: st.s.sessionId,
    cut: cut ?? 0,
    ...(e.kind === 'Append' ? { eventId: ++st.eventCounter } : {}),
    ...(e.note ? { note: e.note } : {}),
    ...(early ? { early } : {}),
    bytes: 0,
  };
  entry.bytes = e.bytes + JSON.stringify({ ...entry, props: null }).length; // the props were measured by validate()
  return entry;
}

// ---- writing -------------------------------------------------------------------------------------

/** What a read, list or add found it could not keep: evicted past the bounds, or refused by the add rule. Removed already. */
export function notKept(c: Step, r: StorageResult): void {
  for (const e of r.dropped ?? []) dropRef(c, e, FULL, false);
  for (const e of r.refused ?? []) dropRef(c, e, refuses(r.config!, e) ?? 'cleared', false);
}

/** A write came back: a tab that does not deliver hands its own over. */
export function onAdded(c: Step, r: StorageResult): void {
  const { st, fx } = c;
  st.outbox.stranded = undefined; // writes work
  notKept(c, r);
  if (st.lead === 'leading' || st.lead === 'asking') return; // it may send them itself
  forgetStored(st);
  const flush = st.pass === 'asked' && !st.outbox.unwritten.length;
  if (flush) st.pass = false;
  fx.push({ type: 'wrote', flush });
}

/** A write failed: its entries are this tab's alone again, and it sends them itself until a write works. */
export function addFailed(c: Step, op: Add, error: string | undefined): void {
  const { outbox } = c.st;
  outbox.unwritten.unshift(...op.entries.filter((e) => !outbox.ended.has(e.uuid)));
  outbox.stranded = `IndexedDB write failed: ${(error ?? 'unknown').slice(0, 200)}`;
}

/** What is stored is the delivering tab's to track: this tab keeps what only it holds, and its request. Whether it forgot any. */
export function forgetStored(st: State): boolean {
  const { outbox } = st;
  const mine = new Set([...outbox.unwritten, ...writing(st), ...(st.flight?.entries ?? [])].map((e) => e.uuid));
  let forgot = false;
  for (const uuid of [...outbox.known.keys()]) {
    if (mine.has(uuid)) continue;
    outbox.known.delete(uuid); // its attempts are still counted, should it come back
    forgot = true;
  }
  return forgot;
}

// ---- judging and sending -------------------------------------------------------------------------

/** What may be sent now; drops what never may (expired, another id, before the cut, refused by the user, over quota). */
export function judge(c: Step, entries: OutboxEntry[]): OutboxEntry[] {
  const { st } = c;
  const flying = new Set(st.flight?.entries.map((e) => e.uuid));
  const ready: OutboxEntry[] = [];
  for (const e of entries) {
    if (st.outbox.ended.has(e.uuid) || flying.has(e.uuid)) continue;
    const reason = whyNot(c, e);
    if (reason) dropRef(c, e, reason, true);
    else ready.push(e);
  }
  return ready;
}

function whyNot(c: Step, e: OutboxEntry): string | undefined {
  const { config } = c.st.consent;
  const state = gate(c);
  if (expired(e, c.wall)) return `expired: not delivered within ${OUTBOX_TTL_MS / 86_400_000} days`;
  if (e.distinctId !== config.analyticsId) return 'cleared';
  if ((e.cut ?? 0) < (config.cut ?? 0)) return 'recorded before the last opt-out or clear';
  if (userSaidNo(state)) return state.reason;
  if (c.st.timers.quota !== undefined) return 'quota-limited: the endpoint said the project is over its quota (for a minute)';
  return undefined;
}

/** A list of the shared outbox came back: judge it (by the config read with it), and send the oldest. */
export function onListed(c: Step, op: StorageOp & { op: 'list' }, r: StorageResult, inTime: boolean): void {
  const { st } = c;
  notKept(c, r);
  const entries = r.entries ?? [];
  if (op.mark && entries.length) st.outbox.marked = true;
  const sweeping = !op.mark;
  const wait = (r.notBefore ?? c.wall) - c.wall;
  if (wait > 0 && wait <= NOT_BEFORE_MAX_MS) arm(c, 'retry', Math.max(wait, (st.timers.retry ?? 0) - c.now)); // a wait another tab was told
  forgetStored(st); // what it knows waits: this list (marked: no other tab evicts it now), and what only it holds
  const flying = new Set(st.flight?.entries.map((e) => e.uuid));
  const fresh = entries.filter((e) => !st.outbox.ended.has(e.uuid) && !flying.has(e.uuid));
  for (const e of entries) if (st.outbox.ended.has(e.uuid)) st.outbox.ended.set(e.uuid, false); // ended here, stored again (a late write): removed again
  const ready = judge(c, entries);
  // More wait: listed again once this is answered (or, sweeping, once what ended is removed); no
  // progress (all of it ending already, or nothing refused any more): the next window.
  const progress = sweeping ? ready.length < fresh.length : fresh.length > 0;
  if (r.more && progress) st.pass = sweeping ? 'sweep' : st.pass || 'due';
  else if (r.more) st.timers.pass ??= c.now + st.s.intervalMs;
  if (sweeping) return;
  if (!delivers(c)) {
    if (st.lead === 'leading' && gate(c).reason === 'loading') st.pass ||= 'due'; // held by a re-read: again after it
    return;
  }
  for (const e of ready) st.outbox.known.set(e.uuid, e);
  if (st.flight || st.timers.retry !== undefined) return;
  if (st.transport.state === 'ready' && inTime) send(c, ready);
  else if (ready.length) st.pass ||= 'due'; // once posthog-js is loaded; or marked again (this answer came too late)
}

/** One request, the gate asked in this very step. */
export function send(c: Step, entries: OutboxEntry[]): void {
  const { st, fx } = c;
  const batch = entries.slice(0, st.s.batch);
  if (!batch.length) return;
  const wire = batch.map((e) => allowListed(e, st.consent.config.metadata));
  const id = ++st.ids;
  st.flight = { id, entries: batch, wire, aborted: false };
  const { attempts } = st.outbox;
  for (const e of batch) attempts.set(e.uuid, (attempts.get(e.uuid) ?? 0) + 1);
  for (const uuid of attempts.keys()) if (attempts.size > ATTEMPTS_KEPT) attempts.delete(uuid); // the oldest: handed over long ago
  fx.push({ type: 'send', id, batch: wire, by: c.now + START_MS });
}

/** The endpoint answered (or did not). Only a 2xx that was not a redirect is delivery. */
export function onAnswer(c: Step, a: { id: number; status: number; redirected: boolean; quotaLimited: boolean; error?: string }): void {
  const { st } = c;
  const f = st.flight;
  if (!f || f.id !== a.id) return;
  st.flight = undefined;
  if (f.aborted) {
    // What it carried was ended, or waits (in storage: the delivering tab's, if that is another now).
    if (st.lead !== 'leading' && st.lead !== 'asking') forgetStored(st);
    return;
  }
  const ok = a.status >= 200 && a.status < 300 && !a.redirected;
  const refused = a.status >= 400 && a.status < 500 && a.status !== 408 && a.status !== 429;
  if (!ok && !refused) return retryLater(c, a);
  st.failures = 0;
  st.lastError = undefined;
  if (a.quotaLimited) arm(c, 'quota', QUOTA_MS);
  const unwritten = new Set(st.outbox.unwritten.map((e) => e.uuid));
  f.entries.forEach((e, i) => {
    const stored = !unwritten.has(e.uuid);
    if (refused) return dropRef(c, e, `refused by the endpoint (HTTP ${a.status})`, stored);
    const other = e.sessionId !== st.s.sessionId ? 'recorded in an earlier page load or another tab' : undefined;
    sent(c, e, f.wire[i]!.properties, [e.note, other, a.quotaLimited ? 'the endpoint answered quota_limited: PostHog discards it' : undefined], stored);
  });
  st.outbox.unwritten = st.outbox.unwritten.filter((e) => !st.outbox.ended.has(e.uuid));
}

function retryLater(c: Step, a: { status: number; redirected: boolean; error?: string }): void {
  const { st } = c;
  st.failures++;
  const redirect = a.redirected || (a.status >= 300 && a.status < 400);
  st.lastError = redirect ? `redirected (HTTP ${a.status || '3xx'}): not delivery` : a.status ? `HTTP ${a.status}` : (a.error ?? 'no answer');
  // "Slow down": posthog-js does not pass a Retry-After on, so a 429 waits as long as it would ever have (30 s).
  arm(c, 'retry', Math.max(backoff(st.failures, c.random), a.status === 429 ? RATE_LIMITED_MS : 0));
}

/**
 * What only this tab holds, when its writes fail: it sends that itself, once storage has its mark
 * (so that an opt-out elsewhere waits for the request); what its mark names, judged again now.
 */
export function onMarked(c: Step, op: StorageOp & { op: 'mark' }, inTime: boolean): void {
  const { st } = c;
  st.outbox.marked = true;
  const named = new Set(op.uuids);
  const entries = st.outbox.unwritten.filter((e) => named.has(e.uuid));
  if (!inTime) st.pass ||= 'due'; // marked again: this answer came too late for its mark to outlive a request
  else if (delivers(c) && !st.flight && st.timers.retry === undefined && st.transport.state === 'ready') send(c, judge(c, entries));
}

// ---- leaving -------------------------------------------------------------------------------------

/**
 * The page is closing: what only this tab holds is journaled now, in this task (a later one may
 * never run), for the delivering tab or the next page to take in. It sends nothing itself: a
 * closing page may not have heard what other tabs stored (its main thread busy, the message
 * queued), and a request made now could not be stopped by an opt-out; a tab that can still ask the
 * gate (and read storage in the same transaction) sends it instead. Its opt-out or clear() not
 * stored yet is announced too: journaled, it is as good as stored, and a tab that learnt of it
 * only by reading could tell what came before it by the clock alone (found by the model: a clock
 * set back and forth).
 */
export function leaving(c: Step): void {
  journal(c);
  for (const ch of c.st.changes) if (ch.cutAt !== undefined) announceUnstored(c, ch);
}

/**
 * Keeps what only this tab holds where it survives the page: events never written (or in the
 * write under way), and the cuts not stored yet — an opt-out or clear() a moment before the page
 * went must not be lost (an opt-in or metadata may: that fails safe). The next storage op of any
 * tab applies the cuts, then takes the events in.
 */
export function journal(c: Step): void {
  const { st } = c;
  // Held while storage was read again (back from the back/forward cache): stamped with what the
  // page last read — the add rule refuses them if that is no longer so — unless recorded before
  // the cut it read (a read that ran after them: found by the model). Never read: not kept.
  if (st.consent.config.analyticsId) dropBefore(c);
  const held = st.consent.config.analyticsId ? st.held.map((h) => stamp(c, h.event, h.uuid, true)) : [];
  const entries = [...writing(st), ...st.outbox.unwritten, ...held].filter((e) => !st.outbox.ended.has(e.uuid));
  c.fx.push({ type: 'journal', entries, changes: journaledCuts(st) });
}

/** The cuts this tab has not stored yet, as journaled: an opt-out or clear() a moment before the page went must not be lost. */
export const journaledCuts = (st: State) => st.changes.filter((ch) => ch.cutAt !== undefined).map((ch) => ({ id: journalId(st, ch), change: cutOf(ch) }));

/** The id a change is journaled under, and stored under (applied once, whichever comes first). */
export const journalId = (st: State, ch: Change): string => `${st.s.sessionId}-${ch.id}`;

/** What of a change must survive: its cut, a clear's new id, an opt-out. */
function cutOf({ cutAt, analyticsId, choice, choiceTime }: ConfigChange): ConfigChange {
  return { cutAt, ...(analyticsId ? { analyticsId } : {}), ...(choice === 'disabled' ? { choice, choiceTime } : {}) };
}
