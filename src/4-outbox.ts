// Stage 4 — the outbox: where accepted events wait until the endpoint has them.
//
// Durable: an event the consent gate accepted is written to IndexedDB (store.ts; one transaction
// for everything accepted since the last one) before anything tries to send it, and removed only
// when a request carrying it was answered 2xx. A closed tab, a crash, an offline device or a
// transport that failed to load loses nothing: the next start delivers it, if consent allows then.
//
// Shared: every tab of the origin writes to the same outbox; exactly one tab (drain-lock.ts)
// reads it and sends everything pending in one request per flush window. The others tell it
// when they wrote. An opt-out or clear() empties it in the transaction that stores the choice.
//
// Asked at every attempt: right before each request (first send, retry, replay, the request a
// closing page makes) the consent gate is asked again, synchronously with the hand-over; an
// opt-out aborts the request in flight. Nothing is retried behind our back (6-transport.ts).
import { userSaidNo, type ConsentState } from './3-consent-gate.js';
import { allowListed, wireName } from './5-allow-list.js';
import { UnusableTransport, type Answer, type Transport } from './6-transport.js';
import type { Audit } from './7-audit.js';
import type { Identity } from './consent.js';
import { lead, type Leadership } from './drain-lock.js';
import { safeString } from './plain.js';
import { outboxStore, type Metadata, type OutboxEntry, type OutboxSize, type Storage } from './store.js';

/** Bounds of the outbox (all tabs together); past them the oldest events are dropped, with a reason. */
export const OUTBOX_LIMITS: OutboxSize = { count: 1000, bytes: 1024 * 1024 };
/** An event not delivered within this is dropped (and said so): a week, as an outage may last a weekend. */
export const OUTBOX_TTL_MS = 7 * 24 * 3600_000;
/** At most this many events per request. */
const MAX_BATCH = 500;
/** At most this much (uncompressed) in the request a closing page makes: keepalive requests share 64 KB, and posthog-js sends a larger one without keepalive (it would die with the page). */
const BEACON_BYTES = 48 * 1024;
/** Why the oldest waiting events go when the outbox is past its bounds (wherever that is found). */
const FULL = 'outbox full: the oldest waiting events are dropped';
/** The least a 429 waits (posthog-js caps a Retry-After header at this). */
const RATE_LIMITED_MS = 30_000;
/** PostHog's quota answer holds for a minute; posthog-js waits as long. */
const QUOTA_MS = 60_000;

export interface OutboxDeps {
  db: Storage;
  projectKey: string;
  apiHost: string;
  intervalMs: number;
  firstRunGrace: boolean;
  /** The consent gate (3-consent-gate.ts), asked before every attempt. */
  consent(): ConsentState;
  identity(): Identity;
  /** The stored id differs from the one in memory: another tab changed it; read it again. */
  stale(): void;
  metadata(): Metadata;
  audit: Audit;
  loadTransport(): Promise<Transport>;
  /** Tells the delivering tab that we wrote events (`now`: the host asked to flush). */
  wrote(now: boolean): void;
}

export interface DeliveryStatus {
  /** Where pending events wait: IndexedDB, or (it failed) this tab's memory. */
  outbox: 'indexeddb' | 'memory';
  /** Why the outbox is in memory, when it is. */
  outboxProblem?: string;
  /** Events waiting in the outbox (all tabs', or this tab's when in memory). */
  pending: number;
  /** This tab is the one delivering the shared outbox. */
  delivering: boolean;
  transport: 'not-loaded' | 'loading' | 'ready' | 'failed' | 'unusable';
  transportProblem?: string;
  /** The last failed request, and when the next attempt is due (ISO 8601). */
  lastError?: string;
  nextAttempt?: string;
}

export interface Outbox {
  /** Keeps an accepted event (the gate said yes at acceptance). */
  push(entry: OutboxEntry): void;
  /** Sends what is pending now, if this tab delivers; resolves when the endpoint answered (or it cannot send now). */
  flush(): Promise<void>;
  /** Forgets what this tab holds (each audited with `reason`) and aborts the request in flight. */
  discard(reason: string): void;
  /** Entries a stored change removed from the outbox: audited as dropped, if not already. */
  emptied(entries: OutboxEntry[], reason: string): void;
  /** The gate's answer changed. */
  changed(state: ConsentState): void;
  /** Another tab wrote events (`now`: and asks for them to be sent now). */
  wrote(now: boolean): void;
  status(): Promise<DeliveryStatus>;
  close(): void;
}

export function createOutbox(deps: OutboxDeps): Outbox {
  const store = outboxStore(deps.db);
  /** Accepted, not yet written to IndexedDB. */
  let staged: OutboxEntry[] = [];
  /** Every entry this tab knows is waiting (its own, and what it last read as the delivering tab). */
  const known = new Map<string, OutboxEntry>();
  /** Requests made per event, for the audit. */
  const attempts = new Map<string, number>();
  let mode: DeliveryStatus['outbox'] = 'indexeddb';
  let modeProblem: string | undefined;
  let writing: Promise<void> | undefined;
  let leadership: Leadership | undefined;
  let closed = false;
  /** The page hid (pagehide): it sent what it could; until it shows again, it sends nothing more. */
  let closing = false;

  let transport: Transport | undefined;
  let transportState: DeliveryStatus['transport'] = 'not-loaded';
  let transportProblem: string | undefined;
  let loading: Promise<void> | undefined;
  let loadFailures = 0;
  let loadAgainAt = 0;

  /** The request in flight, which an opt-out aborts; and what it carries. */
  let inFlight: { controller: AbortController; uuids: Set<string>; reason?: string } | undefined;
  let failures = 0;
  let lastError: string | undefined;
  let retryAt = 0;
  let quotaUntil = 0;

  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let draining: Promise<void> | undefined;
  let again = false;

  const dropped = (e: OutboxEntry, reason: string) => {
    known.delete(e.uuid);
    attempts.delete(e.uuid);
    deps.audit.add({ name: wireName(e), outcome: 'dropped', reason, uuid: e.uuid });
  };

  /** In memory, the outbox's bounds are kept here: past them the oldest go, with a reason. */
  const trimMemory = () => {
    let bytes = 0;
    for (const e of known.values()) bytes += e.bytes;
    for (const e of known.values()) {
      if (known.size <= OUTBOX_LIMITS.count && bytes <= OUTBOX_LIMITS.bytes) break;
      bytes -= e.bytes;
      dropped(e, FULL);
    }
  };

  /** First-run grace: this is the very first page load of this browser's id, so nothing leaves. */
  const inGrace = () => {
    const who = deps.identity();
    return deps.firstRunGrace && who.firstSessionId !== undefined && who.firstSessionId === who.sessionId;
  };

  /** This tab sends: it leads (or its outbox is in memory, so only it can), and it is not going away. */
  const delivers = () => !closed && !closing && (mode === 'memory' || leadership?.leading() === true);

  // ---- writing ----------------------------------------------------------------------------

  /** Writes what was accepted since the last write, in one transaction. */
  const write = (): Promise<void> => {
    if (writing) return writing.then(() => (staged.length ? write() : undefined));
    if (!staged.length || mode === 'memory') return Promise.resolve();
    const batch = staged;
    staged = [];
    const written = store
      .add(batch, OUTBOX_LIMITS)
      .then(
        (evicted) => {
          for (const e of evicted) dropped(e, FULL);
          if (!delivers()) {
            for (const e of batch) known.delete(e.uuid); // the delivering tab has them now
            deps.wrote(false);
          }
        },
        (err: unknown) => {
          // IndexedDB failed mid-session: keep consented events in this tab's memory (they are in
          // `known`) and say so in config(). Consent is unaffected: it lives in its own record.
          mode = 'memory';
          modeProblem = `IndexedDB write failed: ${safeString(err).slice(0, 200)}`;
          leadership?.resign();
          leadership = undefined;
        },
      )
      .finally(() => (writing = undefined));
    writing = written;
    return written.then(() => (staged.length ? write() : undefined));
  };

  // ---- the transport ----------------------------------------------------------------------

  /** Starts loading posthog-js if something may be sent and it is not loaded, failed recently or unusable. */
  const warm = (): Promise<void> => {
    if (transport || transportState === 'unusable' || closed) return Promise.resolve();
    if (loading) return loading;
    if (Date.now() < loadAgainAt) return Promise.resolve();
    transportState = 'loading';
    loading = deps.loadTransport().then(
      (t) => {
        if (closed) return t.close();
        transport = t;
        transportState = 'ready';
        transportProblem = undefined;
        loadFailures = 0;
      },
      (err: unknown) => {
        transportProblem = safeString(err instanceof Error ? err.message : err).slice(0, 200);
        if (err instanceof UnusableTransport) {
          transportState = 'unusable';
          deps.audit.add({ name: '(transport)', outcome: 'dropped', reason: `posthog-js is not usable (${transportProblem}): nothing is sent; events wait in the outbox` });
          return;
        }
        // Blocked or offline: try again later (and at once when the browser is back online).
        transportState = 'failed';
        loadFailures++;
        loadAgainAt = Date.now() + backoff(loadFailures);
        wakeAt(loadAgainAt);
      },
    );
    loading = loading.finally(() => (loading = undefined));
    return loading;
  };

  // ---- delivering -------------------------------------------------------------------------

  /**
   * Sorts what waits: returns what may be sent now; drops what never may (expired, recorded
   * under a cleared id, or the user's wish is off); leaves the rest waiting.
   */
  const sort = (entries: OutboxEntry[], state: ConsentState, now: number, analyticsId: string): OutboxEntry[] => {
    const gone: OutboxEntry[] = [];
    const ready: OutboxEntry[] = [];
    for (const e of entries) {
      if (inFlight?.uuids.has(e.uuid)) continue;
      let reason: string | undefined;
      if (now - e.queuedAt > OUTBOX_TTL_MS) reason = `expired: not delivered within ${OUTBOX_TTL_MS / 86_400_000} days`;
      else if (e.distinctId !== analyticsId) reason = 'cleared';
      else if (userSaidNo(state)) reason = state.reason; // the user's wish, not this page's
      else if (now < quotaUntil) reason = `quota-limited: the endpoint said the project is over its quota (until ${new Date(quotaUntil).toISOString()})`;
      if (reason) {
        dropped(e, reason);
        gone.push(e);
      } else ready.push(e);
    }
    if (gone.length && mode === 'indexeddb') void store.remove(gone.map((e) => e.uuid)).catch(() => undefined);
    return ready;
  };

  /**
   * What waits, oldest first: the shared outbox as it is now (after writing what this tab
   * staged), judged by the id stored with it. Undefined if it cannot be read now (tried again
   * later) or if this tab's idea of the id is out of date.
   */
  const pending = async (): Promise<OutboxEntry[] | undefined> => {
    await write();
    const id = deps.identity().analyticsId;
    if (mode === 'memory') return [...known.values()];
    let read: Awaited<ReturnType<typeof store.list>>;
    try {
      read = await store.list(deps.projectKey, deps.apiHost);
    } catch (err) {
      lastError = `IndexedDB read failed: ${safeString(err).slice(0, 200)}`;
      wakeAt(Date.now() + backoff(++failures)); // a slow or failing read: try again, nothing lost
      return undefined;
    }
    if (read.config && read.config.analyticsId !== id) {
      deps.stale(); // another tab cleared the id and we have not heard yet: judge nothing by the old one
      return undefined;
    }
    const stored = new Set(read.entries.map((e) => e.uuid));
    const unwritten = new Set(staged);
    for (const e of known.values()) {
      if (!stored.has(e.uuid) && !unwritten.has(e)) (known.delete(e.uuid), attempts.delete(e.uuid)); // delivered or dropped elsewhere
    }
    for (const e of read.entries) known.set(e.uuid, e);
    return read.entries;
  };

  /** One attempt: a request carrying `batch`, the gate asked synchronously just before. */
  const attempt = async (sorted: OutboxEntry[]): Promise<'sent' | 'stop'> => {
    const state = deps.consent();
    const id = deps.identity().analyticsId;
    // Still waiting, still under the current id: a clear() or a discard() while posthog-js was
    // loading (an await ago) must not let the old id's events through.
    const batch = sorted.filter((e) => known.has(e.uuid) && e.distinctId === id);
    if (!batch.length || !state.enabled || !delivers() || !transport || inGrace()) return 'stop';
    const t = transport;
    const wire = batch.map((e) => allowListed(e, deps.metadata()));
    const flight = { controller: new AbortController(), uuids: new Set(batch.map((e) => e.uuid)), reason: undefined as string | undefined };
    inFlight = flight;
    for (const e of batch) attempts.set(e.uuid, (attempts.get(e.uuid) ?? 0) + 1);
    let answer: Answer;
    try {
      answer = await t.send(wire, flight.controller.signal);
    } finally {
      inFlight = undefined;
    }
    if (flight.reason !== undefined) return 'stop'; // cancelled: discard() has audited them
    const ok = answer.status >= 200 && answer.status < 300;
    const refused = answer.status >= 400 && answer.status < 500 && answer.status !== 408 && answer.status !== 429;
    if (!ok && !refused) {
      failures++;
      lastError = answer.status ? `HTTP ${answer.status}` : (answer.error ?? 'no answer');
      // "Slow down": posthog-js does not pass a Retry-After header on (request-dispatch.js drops it), so a
      // 429 waits at least as long as posthog-js would ever have waited for one (30 s).
      retryAt = Date.now() + Math.max(backoff(failures), answer.status === 429 ? RATE_LIMITED_MS : 0);
      wakeAt(retryAt);
      return 'stop';
    }
    failures = 0;
    lastError = undefined;
    if (answer.quotaLimited) quotaUntil = Date.now() + QUOTA_MS;
    const removed = store.remove([...flight.uuids]).catch(() => undefined); // in memory mode too: they may have been written before
    const session = deps.identity().sessionId;
    batch.forEach((e, i) => {
      if (refused) return dropped(e, `refused by the endpoint (HTTP ${answer.status})`);
      const n = attempts.get(e.uuid) ?? 1;
      known.delete(e.uuid);
      attempts.delete(e.uuid);
      const notes = [
        e.note,
        e.sessionId !== session ? 'recorded in an earlier page load or another tab' : undefined,
        answer.quotaLimited ? 'the endpoint answered quota_limited: PostHog discards it' : undefined,
      ].filter(Boolean);
      deps.audit.add({ name: wireName(e), outcome: 'sent', properties: structuredClone(wire[i]!.properties), uuid: e.uuid, attempts: n, ...(notes.length ? { reason: notes.join('; ') } : {}) });
    });
    await removed;
    return 'sent';
  };

  /** Delivers everything that may leave now, one request per MAX_BATCH. Concurrent calls share one pass. */
  const drain = (): Promise<void> => {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    if (draining) {
      again = true;
      return draining;
    }
    draining = (async () => {
      do {
        again = false;
        const state = deps.consent();
        if (!state.enabled && state.reason === 'loading') {
          await write(); // nothing is judged before the choice is known, but nothing staged is lost either
          break;
        }
        if (!delivers() && state.enabled) {
          await write();
          if (!delivers()) deps.wrote(true); // the delivering tab sends them now
          break;
        }
        const entries = await pending();
        const now = deps.consent();
        if (!entries || (!now.enabled && now.reason === 'loading')) break;
        const ready = sort(entries, now, Date.now(), deps.identity().analyticsId);
        if (!ready.length || !now.enabled || inGrace() || Date.now() < retryAt) break;
        await warm();
        if (!transport) break; // it waits in the outbox: loading is retried with backoff, and on 'online'
        if ((await attempt(ready.slice(0, MAX_BATCH))) === 'stop') break;
        if (ready.length > MAX_BATCH) again = true;
      } while (again && !closed);
    })()
      .catch(() => undefined) // never into the host; what waits stays for the next pass
      .finally(() => (draining = undefined));
    return draining;
  };

  /** Arms the flush window: what is pending goes out together when it ends. */
  const schedule = () => {
    if (flushTimer === undefined && !closed) flushTimer = setTimeout(() => void drain(), deps.intervalMs);
  };

  /** Runs a pass at `at` (a retry or a transport reload). */
  const wakeAt = (at: number) => {
    clearTimeout(retryTimer);
    if (!closed) retryTimer = setTimeout(() => void drain(), Math.max(0, at - Date.now()));
  };

  /** Leads delivery while the gate is on (and this is not a first run's grace); resigns otherwise. */
  const follow = (state: ConsentState) => {
    const should = state.enabled && !closed && mode === 'indexeddb' && !inGrace();
    if (should && !leadership) {
      // Taking over: what earlier pages and other tabs left goes out with the next flush window.
      leadership = lead(deps.db, `rerun-analytics-drain ${deps.apiHost} ${deps.projectKey}`, deps.identity().sessionId, () => {
        schedule();
        if (known.size) void warm();
      });
    } else if (!should && leadership) {
      leadership.resign();
      leadership = undefined;
    }
  };

  // ---- the page going away ----------------------------------------------------------------

  // Hidden (tab switched, app backgrounded): the page still runs, so deliver now, normally.
  // Pagehide (navigating away, closing): only what is synchronous leaves, so what this tab knows
  // is waiting goes in one keepalive request, after asking the gate. Nobody will read its answer,
  // so nothing is removed or audited as sent: it stays in the outbox, and a later page delivers
  // it again (the server keeps one: same uuid). The request in flight, if any, is not keepalive:
  // it dies with the page, and what it carried stays too.
  const onHide = (e: Event) => {
    try {
      if (closed) return;
      if (e.type === 'visibilitychange') {
        if (document.visibilityState === 'hidden') void drain();
        return;
      }
      if (!delivers() || !transport || inGrace() || !deps.consent().enabled) return void write();
      // Keepalive requests share 64 KB: take what surely fits once compressed.
      let room = BEACON_BYTES;
      const wire = sort([...known.values()], deps.consent(), Date.now(), deps.identity().analyticsId) // (another id's are dropped there)
        .map((x) => allowListed(x, deps.metadata()))
        .filter((w) => (room -= JSON.stringify(w).length) >= 0);
      if (wire.length) transport.sendOnClose(wire);
      closing = true; // a delivery started a moment ago (when the tab was hidden) must not send them again
      void write(); // what was staged is kept for the next visit (if the page survives long enough to write)
    } catch {
      // the page is going away; never throw into its handlers
    }
  };
  // Back from the back/forward cache: this page delivers again.
  const onShow = (e: Event) => {
    if (!(e as PageTransitionEvent).persisted || !closing) return;
    closing = false;
    schedule();
  };
  const onOnline = () => {
    loadAgainAt = 0;
    retryAt = 0;
    void drain();
  };
  globalThis.addEventListener?.('visibilitychange', onHide);
  globalThis.addEventListener?.('pagehide', onHide);
  globalThis.addEventListener?.('pageshow', onShow);
  globalThis.addEventListener?.('online', onOnline);

  /** Stops the request in flight (what it carried is not audited here). */
  const abort = (reason: string) => {
    if (!inFlight) return;
    inFlight.reason = reason;
    inFlight.controller.abort();
  };

  /** Forgets what this tab holds, each audited as dropped with `reason`, and aborts the request in flight. */
  const discard = (reason: string) => {
    if (inFlight) for (const uuid of inFlight.uuids) {
      const e = known.get(uuid);
      if (e) dropped(e, `${reason} (its request was aborted in flight)`);
    }
    abort(reason);
    for (const e of [...known.values()]) dropped(e, reason);
    staged = [];
  };

  return {
    push(entry) {
      if (closed) return dropped(entry, 'shut down');
      known.set(entry.uuid, entry);
      if (mode === 'memory') trimMemory();
      else {
        staged.push(entry);
        if (staged.length === 1) setTimeout(() => void write(), 0); // one transaction for everything accepted meanwhile
        // More than the outbox holds, waiting for one write: the oldest would be evicted by it
        // anyway; go now, so that no write grows past the bound (and no read waits behind it).
        if (staged.length > OUTBOX_LIMITS.count) dropped(staged.shift()!, FULL);
      }
      if (delivers() && !inGrace()) {
        void warm(); // start loading now, not at the first flush: a closing tab can only send with it loaded
        schedule();
      }
    },
    async flush() {
      await leadership?.decided; // a tab that just started may be about to lead
      await drain();
    },
    discard,
    emptied(entries, reason) {
      for (const e of entries) if (!deps.audit.has(e.uuid)) dropped(e, reason); // those this tab held are audited already
    },
    changed(state) {
      if (state.reason === 'loading') return; // held: nothing is sent until the choice is read again
      if (userSaidNo(state)) {
        discard(state.reason);
        void drain(); // what earlier pages left is dropped too, each with the reason
      } else if (!state.enabled) {
        // Not the user's wish (the embedder, automation, a dev build, unreadable storage): stop
        // sending from this page; what waits stays in the shared outbox for a page that may.
        // In memory, though, this tab holds the only copy: then it is dropped, and said so.
        if (mode === 'memory') discard(state.reason);
        else {
          abort(state.reason);
          void write();
          known.clear();
          attempts.clear();
        }
      }
      follow(state);
      if (state.enabled && known.size) schedule();
    },
    wrote(now) {
      if (delivers()) void (now ? drain() : schedule());
    },
    async status() {
      const stored = mode === 'indexeddb' ? await store.size().catch(() => undefined) : undefined;
      return {
        outbox: mode,
        ...(modeProblem ? { outboxProblem: modeProblem } : {}),
        pending: stored?.count ?? known.size,
        delivering: delivers(),
        transport: transportState,
        ...(transportProblem ? { transportProblem } : {}),
        ...(lastError ? { lastError } : {}),
        ...(retryAt > Date.now() ? { nextAttempt: new Date(retryAt).toISOString() } : {}),
      };
    },
    close() {
      closed = true;
      // A request still in flight is stopped: after shutdown() nothing leaves. What it carried
      // stays in the outbox for the next visit (nothing is audited as sent or dropped).
      abort('shut down');
      clearTimeout(flushTimer);
      clearTimeout(retryTimer);
      leadership?.resign();
      leadership = undefined;
      transport?.close();
      globalThis.removeEventListener?.('visibilitychange', onHide);
      globalThis.removeEventListener?.('pagehide', onHide);
      globalThis.removeEventListener?.('pageshow', onShow);
      globalThis.removeEventListener?.('online', onOnline);
    },
  };
}

/** Exponential backoff with ±50 % jitter: 3 s, 6 s, 12 s … at most 5 minutes. */
function backoff(failures: number): number {
  const base = Math.min(300_000, 3000 * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.5 + Math.random()));
}
