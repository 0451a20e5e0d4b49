// The stages wired together: loaded right after createAnalytics() (analytics.ts, the startup
// facade), so that the page's own startup carries none of it. The data flow, one file per stage:
//   1-record → 2-validate → 3-consent-gate → 4-outbox → 5-allow-list → 6-transport → 7-audit
// Nothing here throws into the host, and nothing blocks it.
import { nanoid } from 'nanoid';
import { INTAKE_LIMIT, Unreadable, type Intake } from './1-record.js';
import { validate, type Recorded, type Valid } from './2-validate.js';
import type { ConsentState } from './3-consent-gate.js';
import { createOutbox, type DeliveryStatus } from './4-outbox.js';
import { wireName } from './5-allow-list.js';
import { loadTransport } from './6-transport.js';
import { createAudit, type AuditEntry } from './7-audit.js';
import { CATALOG, type Catalog } from './catalog.js';
import { createConsent } from './consent.js';
import { disclosure } from './disclosure.js';
import { fromNative, nativeName } from './native.js';
import type { ResolvedOptions } from './options.js';
import { safeString } from './plain.js';
import { locationProps } from './root-domain.js';
import { openStorage, plainMetadata, type Metadata, type OutboxEntry } from './store.js';
import { connectTabs } from './tabs.js';

export interface ConfigSnapshot {
  analyticsId: string;
  sessionId: string;
  enabled: boolean;
  reason: string;
  metadata: Metadata;
  storage: 'indexeddb' | 'unavailable';
  /** Where events wait and how delivery goes (the outbox, the transport, the last failure). */
  delivery: DeliveryStatus;
}

/** What the facade (analytics.ts) asks of the loaded stages. */
export interface Core {
  readonly ready: Promise<void>;
  /** Takes everything the intake holds, now (validate, gate, outbox). */
  take(intake: Intake): void;
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

/** Events recorded before the stored choice is read wait for it, at most this many. */
export const HOLD_CAPACITY = 500;
/** shutdown() waits this long at most for what is pending to be delivered; the rest stays in the outbox. */
const SHUTDOWN_WAIT_MS = 3000;

/** Starts the stages for one createAnalytics(). `notify` hears every change of the gate's answer. */
export function startCore(opts: ResolvedOptions, notify: (state: ConsentState) => void): Core {
  const catalog: Catalog = Object.freeze({ ...CATALOG, ...opts.events });
  const audit = createAudit(opts.auditCapacity);
  const sessionId = nanoid();
  let eventCounter = 0;
  let closed = false;

  const dropped = (name: string, reason: string) => audit.add({ name, outcome: 'dropped', reason });

  const db = openStorage();
  const consent = createConsent(opts, db, sessionId, {
    changed(state) {
      outbox.changed(state);
      if (state.reason !== 'loading') release();
    },
    cleared: () => outbox.discard('cleared'),
    emptied: (entries, reason) => outbox.emptied(entries, reason),
    announce: (message) => tabs.announce(message),
  });

  const outbox = createOutbox({
    db,
    projectKey: opts.projectKey,
    apiHost: opts.apiHost,
    intervalMs: opts.flushIntervalMs,
    firstRunGrace: opts.firstRunGrace,
    consent: consent.state,
    identity: consent.identity,
    stale: () => consent.heard({ change: 'clear', choice: 'unset' }),
    metadata: consent.metadata,
    audit,
    loadTransport: () => loadTransport({ projectKey: opts.projectKey, apiHost: opts.apiHost, refused: (name) => dropped(name, 'not recorded by the host (made by posthog-js)') }),
    wrote: (now) => tabs.wrote(now),
  });

  const tabs = connectTabs({ changed: consent.heard, wrote: outbox.wrote });
  consent.subscribe(notify);

  /** Validated events waiting for the stored choice to be read (bounded). */
  let held: Valid[] = [];

  /** Into the outbox, stamped with the id it is recorded under. The gate said yes just before. */
  const keep = (e: Valid) => {
    const who = consent.identity();
    const now = Date.now();
    const entry: OutboxEntry = {
      uuid: uuid7(now),
      projectKey: opts.projectKey,
      apiHost: opts.apiHost,
      kind: e.kind,
      name: e.name,
      props: e.props,
      at: e.time,
      queuedAt: now,
      distinctId: who.analyticsId,
      sessionId: who.sessionId,
      ...(e.kind === 'Append' ? { eventId: ++eventCounter } : {}),
      ...(e.note ? { note: e.note } : {}),
      bytes: 0,
    };
    entry.bytes = e.bytes + JSON.stringify({ ...entry, props: null }).length; // the props were measured by validate()
    outbox.push(entry);
  };

  /** The stored choice is known now: held events go on, or are dropped with the reason. */
  const release = () => {
    const waiting = held;
    held = [];
    for (const e of waiting) gate(e);
  };

  /** The consent gate, asked for one validated event. */
  const gate = (e: Valid) => {
    const state = consent.state();
    if (state.enabled) return keep(e);
    if (state.reason !== 'loading') return dropped(wireName(e), state.reason);
    if (held.length >= HOLD_CAPACITY) return dropped(wireName(e), `too many at once: more than ${HOLD_CAPACITY} recorded before the stored choice was read`);
    held.push(e);
  };

  const accept = (rec: Recorded) => {
    const result = validate(rec, catalog, { app_env: opts.appEnv, ...locationProps(globalThis.location?.href ?? '') });
    if (!result.ok) return dropped(typeof rec.name === 'string' ? rec.name.slice(0, 100) : '(no name)', result.reason);
    gate(result.event);
  };

  /** Events judged in this batch, at most INTAKE_LIMIT (a native batch counts each of its events). */
  let budget = 0;
  let over = 0;

  /** One queued call, judged; whatever goes wrong becomes an audit entry, never a throw. */
  const judge = (kind: 0 | 1, a: unknown, b: unknown, time: number) => {
    try {
      if (closed) return dropped(kind === 0 ? safeString(a).slice(0, 100) : nativeName(a), 'shut down');
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
      dropped('(unknown)', `internal error: ${safeString(err).slice(0, 200)}`);
    }
  };

  return {
    ready: consent.ready,
    take(intake) {
      budget = INTAKE_LIMIT;
      over = 0;
      const refused = intake.drain(judge); // judge counts those past the budget here…
      over += refused; // …and the intake those it refused
      if (over) dropped(`(${over} events)`, `too many at once: more than ${INTAKE_LIMIT} recorded within one tick`);
    },
    state: consent.state,
    setEnabled: consent.setEnabled,
    async config() {
      await consent.ready;
      const { enabled, reason } = consent.state(); // now, like isEnabled()
      const stored = consent.config();
      return {
        analyticsId: stored.analyticsId,
        sessionId,
        enabled,
        reason,
        metadata: { ...stored.metadata },
        storage: consent.unreadable() ? 'unavailable' : 'indexeddb',
        delivery: await outbox.status(),
      };
    },
    audit: () => audit.entries(),
    clear: consent.clear,
    async setMetadata(props) {
      let clean: Metadata;
      try {
        clean = plainMetadata(props);
      } catch {
        return; // unreadable input (a throwing getter): nothing to store
      }
      await consent.setMetadata(clean);
    },
    async flush() {
      await consent.ready;
      await outbox.flush();
    },
    async shutdown() {
      if (closed) return;
      closed = true;
      await consent.ready;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([outbox.flush(), new Promise((r) => (timer = setTimeout(r, SHUTDOWN_WAIT_MS)))]);
      clearTimeout(timer);
      outbox.close();
      consent.close();
      tabs.close();
      db.close();
    },
    details: () => disclosure(catalog, opts.globalName),
  };
}

/**
 * A UUID v7 (RFC 9562): 48 bits of milliseconds, a 12-bit counter within the millisecond (its
 * "monotonic random" method), then random. Strictly increasing in this page, so the outbox (keyed
 * by it) reads in the order events were taken. From getRandomValues (crypto.randomUUID is missing
 * outside secure contexts).
 */
let lastMs = 0;
let seq = 0;
function uuid7(now: number): string {
  let ms = Math.max(0, Math.floor(now));
  if (ms <= lastMs) {
    ms = lastMs;
    if (++seq > 0xfff) (ms = ++lastMs), (seq = 0);
  } else seq = 0;
  lastMs = ms;
  const r = crypto.getRandomValues(new Uint8Array(8));
  const h = Array.from(r, (x) => x.toString(16).padStart(2, '0')).join('');
  const t = ms.toString(16).padStart(12, '0').slice(-12);
  const variant = ((parseInt(h[0]!, 16) & 0x3) | 0x8).toString(16);
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${seq.toString(16).padStart(3, '0')}-${variant}${h.slice(1, 4)}-${h.slice(4, 16)}`;
}
