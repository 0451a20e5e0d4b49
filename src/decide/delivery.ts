// Delivery in the pure core: accepted events are written to the shared outbox, one tab (the
// leader, or any tab whose outbox is in memory) lists and sends them, and each request's answer
// ends them: sent (a 2xx that was not a redirect), refused (4xx), or retried later.
import { userSaidNo } from '../3-consent-gate.js';
import type { Valid } from '../2-validate.js';
import { allowListed, wireName, type WireEvent } from '../5-allow-list.js';
import { expired, OUTBOX_LIMITS, OUTBOX_TTL_MS, type OutboxEntry } from './config.js';
import { cutNow, gate } from './consent.js';
import { drop } from './outcomes.js';
import type { Effect, Fact, State, StorageResult } from './types.js';

type Fx = Effect[];

/** Events validated before the stored choice is read wait for it, at most this many. */
export const HOLD_CAPACITY = 500;
/** At most this much (uncompressed) in the request a closing page makes: keepalive requests share 64 KB. */
const CLOSE_BYTES = 48 * 1024;
/** How far the wall clock may drift from the monotonic one while an event is held, before it counts as set. */
const CLOCK_SLACK_MS = 1000;

/** The least a 429 waits (posthog-js caps a Retry-After header at this). */
export const RATE_LIMITED_MS = 30_000;
/** PostHog's quota answer holds for a minute. */
export const QUOTA_MS = 60_000;
export const FULL = 'outbox full: the oldest waiting events are dropped';

/** Exponential backoff with ±50 % jitter: 3 s, 6 s, 12 s … at most 5 minutes. */
export function backoff(failures: number, random: number): number {
  const base = Math.min(300_000, 3000 * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.5 + random));
}

/** First-run grace: the very first page load of this browser's id sends nothing. */
export const inGrace = (st: State) => st.s.firstRunGrace && st.config.firstSessionId === st.s.sessionId;

/** This tab may send now: consent on, it delivers (leads, or holds the only copy in memory), and it is not leaving. */
export const delivers = (st: State) => !st.closed && st.page !== 'closing' && (st.mode === 'memory' || st.leading) && gate(st).enabled && !inGrace(st);

export function onRecord(st: State, fx: Fx, f: Fact & { type: 'record' }): void {
  const fresh: OutboxEntry[] = [];
  f.events.forEach((event, i) => {
    const uuid = f.uuids[i]!;
    const entry = admit(st, fx, event, uuid);
    if (entry) fresh.push(entry);
  });
  if (st.page === 'closing' && fresh.length) closingSend(st, fx, fresh);
}

/** The consent gate, asked for one validated event: kept, held until the choice is read, or dropped. */
function admit(st: State, fx: Fx, event: Valid, uuid: string): OutboxEntry | undefined {
  const state = gate(st);
  const ref = { uuid, kind: event.kind, name: event.name };
  if (st.closed || st.shutdownBy !== undefined) return void drop(st, fx, ref, 'shut down', false);
  if (state.enabled) return keep(st, fx, event, uuid);
  if (state.reason !== 'loading') return void drop(st, fx, ref, state.reason, false);
  if (st.held.length >= HOLD_CAPACITY) return void drop(st, fx, ref, `too many at once: more than ${HOLD_CAPACITY} recorded before the stored choice was read`, false);
  st.held.push({ event, uuid, now: st.now, wall: st.wall });
}

/** Held events go on (or are dropped) once the gate answers something other than 'loading'. */
export function release(st: State, fx: Fx): void {
  if (!st.held.length || gate(st).reason === 'loading') return;
  const held = st.held;
  st.held = [];
  for (const h of held) {
    // Recorded before the storage it waited for was read: an opt-out or clear stored meanwhile ends it.
    // If the clock was set while it waited, the two cannot be ordered: when unsure, it ends it too.
    const clockSet = Math.abs(st.wall - h.wall - (st.now - h.now)) > CLOCK_SLACK_MS;
    if (st.config.cutAt !== undefined && (clockSet || h.event.time <= st.config.cutAt)) drop(st, fx, { uuid: h.uuid, kind: h.event.kind, name: h.event.name }, 'recorded before the last opt-out or clear', false);
    else admit(st, fx, h.event, h.uuid);
  }
}

/** Stamped with the id it is recorded under, staged for the next write. */
function keep(st: State, fx: Fx, e: Valid, uuid: string): OutboxEntry {
  const entry: OutboxEntry = {
    uuid,
    projectKey: st.s.projectKey,
    apiHost: st.s.apiHost,
    kind: e.kind,
    name: e.name,
    props: e.props,
    at: e.time,
    queuedAt: st.wall,
    distinctId: st.config.analyticsId,
    sessionId: st.s.sessionId,
    ...(e.kind === 'Append' ? { eventId: ++st.eventCounter } : {}),
    ...(e.note ? { note: e.note } : {}),
    bytes: 0,
    cut: cutNow(st),
  };
  entry.bytes = e.bytes + JSON.stringify({ ...entry, props: null }).length; // the props were measured by validate()
  st.known.set(uuid, entry);
  if (st.mode === 'memory') trimMemory(st, fx);
  else {
    st.staged.push(entry);
    // More than the outbox holds, waiting for one write: the oldest would be evicted by it anyway.
    if (st.staged.length > OUTBOX_LIMITS.count) drop(st, fx, st.staged.shift()!, FULL, false);
  }
  if (st.flushAt === undefined) st.flushAt = st.now + st.s.intervalMs;
  return entry;
}

/** In memory, the outbox's bounds are kept here: past them the oldest go (never what is in flight). */
function trimMemory(st: State, fx: Fx): void {
  let bytes = 0;
  for (const e of st.known.values()) bytes += e.bytes;
  const flying = new Set(st.flight?.uuids);
  for (const e of [...st.known.values()]) {
    if (st.known.size <= OUTBOX_LIMITS.count && bytes <= OUTBOX_LIMITS.bytes) break;
    if (flying.has(e.uuid)) continue;
    bytes -= e.bytes;
    drop(st, fx, e, FULL, false);
  }
}

/** The page is closing: what this tab holds leaves in one keepalive request, if the gate says yes now. */
export function closingSend(st: State, fx: Fx, entries: OutboxEntry[]): void {
  if (st.transport !== 'ready' || !gate(st).enabled || inGrace(st) || st.closed) return;
  let room = CLOSE_BYTES;
  const wire = judge(st, fx, entries)
    .map((e) => allowListed(e, st.config.metadata))
    .filter((w) => (room -= JSON.stringify(w).length) >= 0);
  if (wire.length) fx.push({ type: 'send-on-close', batch: wire });
}

/**
 * Sorts what waits: returns what may be sent now; drops what never may (expired, recorded under
 * another id, refused by the user's wish, over quota); skips what is already ended or in flight.
 */
export function judge(st: State, fx: Fx, entries: OutboxEntry[]): OutboxEntry[] {
  const state = gate(st);
  const cut = cutNow(st); // this tab's own opt-out or clear, not yet stored, counts too
  const flying = new Set(st.flight?.uuids);
  const ready: OutboxEntry[] = [];
  for (const e of entries) {
    if (st.removals.has(e.uuid) || flying.has(e.uuid)) continue;
    let reason: string | undefined;
    if (expired(e, st.wall)) reason = `expired: not delivered within ${OUTBOX_TTL_MS / 86_400_000} days`;
    else if (e.distinctId !== st.config.analyticsId) reason = 'cleared';
    else if ((e.cut ?? 0) < cut) reason = 'recorded before the last opt-out or clear';
    else if (userSaidNo(state)) reason = state.reason;
    else if (st.now < st.quotaUntil) reason = 'quota-limited: the endpoint said the project is over its quota (for a minute)';
    if (reason) drop(st, fx, e, reason);
    else ready.push(e);
  }
  return ready;
}

/** A list of the shared outbox came back: judge it (by the config read with it) and send the oldest. */
export function onListed(st: State, fx: Fx, r: StorageResult): void {
  const entries = r.entries ?? [];
  const listed = new Set(entries.map((e) => e.uuid));
  const unwritten = new Set(st.staged.map((e) => e.uuid));
  // Known to wait: what this list marked (no other tab evicts it now), and this tab's unwritten. The
  // rest ended elsewhere, or waits beyond this list unprotected (another tab may evict it): the
  // next list says which. A closing page sends only what it knows.
  for (const uuid of [...st.known.keys()]) if (!listed.has(uuid) && !unwritten.has(uuid)) st.known.delete(uuid), st.attempts.delete(uuid);
  const fresh = entries.filter((e) => !st.removals.has(e.uuid) && !st.flight?.uuids.includes(e.uuid));
  for (const e of fresh) st.known.set(e.uuid, e);
  const ready = judge(st, fx, entries); // drops what never may leave, whoever lists
  // The rest after this: once this request is answered, or what was dropped is removed. Nothing
  // new listed (all of it ending already, its removal failing): the next window, not a list loop.
  if (r.more && fresh.length) userSaidNo(gate(st)) ? (st.sweep = true) : (st.passWanted = true);
  else if (r.more) st.flushAt ??= st.now + st.s.intervalMs;
  st.unmark = true; // the list marked what it may send; unless a request goes now, that mark ends
  if (!delivers(st)) {
    if (st.stale && st.leading) st.passWanted = true; // held while storage is read again: the pass again after it
    return handOver(st); // the delivering tab keeps track of what is stored
  }
  if (st.flight) return;
  // Once posthog-js is loaded (settle starts it, or its reload is due): then the pass again.
  if (ready.length && st.transport !== 'ready') return void (st.flushAt = st.transport === 'failed' ? Math.max(st.loadAgainAt, st.now + 1) : st.transport === 'hung' || st.transport === 'unusable' ? undefined : st.now);
  send(st, fx, ready);
  if (st.flight) st.unmark = false;
}

/** No longer the delivering tab: what is stored is the next one's to track; this tab keeps only what it has not written. */
export function handOver(st: State): void {
  if (st.mode === 'memory') return;
  const unwritten = new Set(st.staged.map((e) => e.uuid));
  for (const uuid of [...st.known.keys()]) if (!unwritten.has(uuid) && !st.flight?.uuids.includes(uuid)) st.known.delete(uuid), st.attempts.delete(uuid);
}

/** One request, the gate asked in this very step. */
export function send(st: State, fx: Fx, batch: OutboxEntry[]): void {
  if (!batch.length || !delivers(st) || st.transport !== 'ready' || st.now < st.retryAt) return;
  const wire: WireEvent[] = batch.map((e) => allowListed(e, st.config.metadata));
  const id = st.nextId++;
  st.flight = { id, uuids: batch.map((e) => e.uuid), entries: batch, wire };
  for (const e of batch) st.attempts.set(e.uuid, (st.attempts.get(e.uuid) ?? 0) + 1);
  fx.push({ type: 'send', id, batch: wire });
}

/** The endpoint answered (or did not). Only a 2xx that was not a redirect is delivery. */
export function onAnswer(st: State, fx: Fx, f: Fact & { type: 'answer' }): void {
  const flight = st.flight;
  if (f.id === st.stopping) st.stopping = undefined; // an aborted request has ended: now its mark may go
  if (!flight || flight.id !== f.id) return; // aborted: already accounted for
  st.flight = undefined;
  const ok = f.status >= 200 && f.status < 300 && !f.redirected;
  const refused = f.status >= 400 && f.status < 500 && f.status !== 408 && f.status !== 429;
  if (!ok && !refused) return st.leading || delivers(st) ? retryLater(st, f) : handOver(st); // no longer this tab's to retry: what is stored is the delivering tab's
  st.failures = 0;
  st.lastError = undefined;
  if (f.quotaLimited) st.quotaUntil = st.now + QUOTA_MS;
  flight.entries.forEach((e, i) => {
    if (refused) return drop(st, fx, e, `refused by the endpoint (HTTP ${f.status})`);
    const attempts = st.attempts.get(e.uuid) ?? 1;
    st.known.delete(e.uuid);
    st.attempts.delete(e.uuid);
    st.removals.add(e.uuid);
    const notes = [
      e.note,
      e.sessionId !== st.s.sessionId ? 'recorded in an earlier page load or another tab' : undefined,
      f.quotaLimited ? 'the endpoint answered quota_limited: PostHog discards it' : undefined,
    ].filter(Boolean);
    fx.push({ type: 'audit', entry: { name: wireName(e), outcome: 'sent', properties: flight.wire[i]!.properties, uuid: e.uuid, attempts, ...(notes.length ? { reason: notes.join('; ') } : {}) } });
  });
}

function retryLater(st: State, f: Fact & { type: 'answer' }): void {
  st.failures++;
  st.unmark = true;
  const redirect = f.redirected || (f.status >= 300 && f.status < 400);
  st.lastError = redirect ? `redirected (HTTP ${f.status || '3xx'}): not delivery` : f.status ? `HTTP ${f.status}` : (f.error ?? 'no answer');
  // "Slow down": posthog-js does not pass a Retry-After on, so a 429 waits as long as it would ever have (30 s).
  st.retryAt = st.now + Math.max(backoff(st.failures, f.random), f.status === 429 ? RATE_LIMITED_MS : 0);
  st.flushAt = st.retryAt; // the next pass
}

/** An add came back: evicted entries are dropped; refused ones too; a follower hands its own over. */
export function onAdded(st: State, fx: Fx, entries: OutboxEntry[], r: StorageResult): void {
  for (const e of r.dropped ?? []) if (!st.removals.has(e.uuid)) drop(st, fx, e, FULL, false);
  if (st.mode === 'memory') {
    // Storage works again: back to it. What was accepted while this write was under way is written next.
    st.mode = 'indexeddb';
    st.modeProblem = undefined;
    const written = new Set(entries.map((e) => e.uuid));
    for (const e of st.known.values()) if (!written.has(e.uuid) && !st.flight?.uuids.includes(e.uuid)) st.staged.push(e);
  }
  const refused = new Set(r.refused);
  const reason = r.config?.choice === 'disabled' ? 'user-opted-out' : 'cleared';
  for (const e of entries) if (refused.has(e.uuid) && st.known.has(e.uuid)) drop(st, fx, e, reason, false);
  if (refused.size === entries.length) return;
  if (!st.leading && (!st.wantLead || st.leadKnown)) {
    for (const e of entries) if (!st.flight?.uuids.includes(e.uuid)) st.known.delete(e.uuid), st.attempts.delete(e.uuid); // the delivering tab has them now
    fx.push({ type: 'wrote', flush: st.passWanted });
    st.passWanted = false;
  }
}

/** An add failed: what this tab accepted stays in its memory, and it delivers that itself. */
export function addFailed(st: State, fx: Fx, failed: OutboxEntry[], error: string | undefined): void {
  // Only what no storage holds is this tab's alone to send: what was written stays for the delivering tab.
  const mine = new Set([...failed, ...st.staged].map((e) => e.uuid));
  for (const uuid of [...st.known.keys()]) if (!mine.has(uuid) && !st.flight?.uuids.includes(uuid)) st.known.delete(uuid), st.attempts.delete(uuid);
  st.staged = []; // every staged entry is in `known` too
  st.mode = 'memory';
  trimMemory(st, fx);
  st.modeProblem = `IndexedDB write failed: ${(error ?? 'unknown').slice(0, 200)}`;
}
