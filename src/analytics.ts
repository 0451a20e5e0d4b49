// createAnalytics(): wires the stages together. The data flow, one file per stage:
//   1-record → 2-validate → 3-consent-gate → 4-outbox → 5-allow-list → 6-transport → 7-audit
// Nothing here throws into the host after option validation, and nothing blocks it.
import { nanoid } from 'nanoid';
import { fromNative, fromRecord, type Recorded } from './1-record';
import { validate, type Valid } from './2-validate';
import type { ConsentState } from './3-consent-gate';
import { createOutbox, type DeliveryStatus } from './4-outbox';
import { wireName } from './5-allow-list';
import { loadTransport } from './6-transport';
import { createAudit, type AuditEntry } from './7-audit';
import { CATALOG, type BuiltInCatalog, type Catalog, type PropsFor } from './catalog';
import { createConsent } from './consent';
import { disclosure } from './disclosure';
import { resolveOptions, type AnalyticsOptions } from './options';
import { safeString } from './plain';
import { locationProps } from './root-domain';
import { openStorage, plainMetadata, type Metadata, type OutboxEntry } from './store';
import { connectTabs } from './tabs';

export type AnalyticsState = ConsentState;

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

type LooseProps = Record<string, boolean | number | string | null | undefined>;

export interface Analytics<C extends Catalog = BuiltInCatalog> {
  /** Resolves once the stored config is loaded (or found unusable). Never rejects. */
  readonly ready: Promise<void>;
  /**
   * Records an event of the catalog (names and properties autocomplete). Never throws: bad
   * input becomes a 'dropped' audit entry. A name only known at run time is checked then.
   */
  record<N extends keyof C & string>(name: N, props?: PropsFor<C[N]>): void;
  record<S extends string>(name: string extends S ? S : never, props?: LooseProps): void;
  /** The native SDK's serde JSON of one event (string or object), e.g. from the viewer's WASM. */
  recordNative(event: string | object): void;
  isEnabled(): boolean;
  /** Persists the user's choice and applies it at once. */
  setEnabled(enabled: boolean): Promise<void>;
  enable(): Promise<void>;
  disable(): Promise<void>;
  /** Called on every change of the effective state, from any cause. Returns an unsubscribe. */
  subscribe(listener: (state: AnalyticsState) => void): () => void;
  config(): Promise<ConfigSnapshot>;
  /** Oldest first, at most `auditCapacity` entries. */
  audit(): AuditEntry[];
  /** The audit as a table in the console, for people in devtools. */
  printAudit(): void;
  /** New id, metadata wiped, pending events dropped; the user's choice is kept. */
  clear(): Promise<void>;
  setMetadata(props: Record<string, boolean | number | string>): Promise<void>;
  /** Sends what is pending now (if consent allows); resolves when the endpoint answered, or nothing can be sent now. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
  details(): string;
}

/** Events recorded before the stored choice is read wait for it, at most this many. */
export const HOLD_CAPACITY = 500;
/** shutdown() waits this long at most for what is pending to be delivered; the rest stays in the outbox. */
const SHUTDOWN_WAIT_MS = 3000;

export function createAnalytics<E extends Catalog = Record<never, never>>(options: AnalyticsOptions<E>): Analytics<BuiltInCatalog & E> {
  const opts = resolveOptions(options); // the only throw: a programmer error at this call
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
    loadTransport: () => loadTransport({ apiHost: opts.apiHost, refused: (name) => dropped(name, 'not recorded by the host (made by posthog-js)') }),
    wrote: (now) => tabs.wrote(now),
  });

  const tabs = connectTabs({ changed: consent.heard, wrote: outbox.wrote });

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
      at: e.time.getTime(),
      queuedAt: now,
      distinctId: who.analyticsId,
      sessionId: who.sessionId,
      ...(e.kind === 'Append' ? { eventId: ++eventCounter } : {}),
      ...(e.note ? { note: e.note } : {}),
      bytes: 0,
    };
    entry.bytes = JSON.stringify(entry).length;
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
    if (held.length >= HOLD_CAPACITY) return dropped(wireName(e), 'outbox full');
    held.push(e);
  };

  const accept = (rec: Recorded) => {
    const result = validate(rec, catalog, { app_env: opts.appEnv, ...locationProps(globalThis.location?.href ?? '') });
    if (!result.ok) return dropped(typeof rec.name === 'string' ? rec.name.slice(0, 100) : '(no name)', result.reason);
    gate(result.event);
  };

  /** Runs a recording call; whatever goes wrong becomes an audit entry, never a throw. */
  const guarded = (make: () => Recorded | string, fallbackName: () => string) => {
    try {
      if (closed) return dropped(fallbackName(), 'shut down');
      const rec = make();
      if (typeof rec === 'string') return dropped(fallbackName(), `malformed native event: ${rec}`);
      accept(rec);
    } catch (err) {
      dropped('(unknown)', `internal error: ${safeString(err).slice(0, 200)}`);
    }
  };

  const instance: Analytics<BuiltInCatalog & E> = {
    ready: consent.ready,
    record(name: unknown, props?: unknown) {
      guarded(() => fromRecord(name, props), () => safeString(name).slice(0, 100));
    },
    recordNative(event: unknown) {
      guarded(() => fromNative(event), () => nativeName(event));
    },
    isEnabled: () => consent.state().enabled, // now: a meta tag added since the last change counts too
    setEnabled: consent.setEnabled,
    enable: () => consent.setEnabled(true),
    disable: () => consent.setEnabled(false),
    subscribe: consent.subscribe,
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
    printAudit() {
      const rows = audit.entries().map((e) => ({ time: e.time, event: e.name, outcome: e.outcome, reason: e.reason ?? '', properties: e.properties ? JSON.stringify(e.properties) : '' }));
      console.table(rows);
    },
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
      await Promise.race([outbox.flush(), new Promise((r) => setTimeout(r, SHUTDOWN_WAIT_MS))]);
      outbox.close();
      consent.close();
      tabs.close();
      db.close();
      if (opts.globalName && (globalThis as Record<string, unknown>)[opts.globalName] === instance) {
        delete (globalThis as Record<string, unknown>)[opts.globalName];
      }
    },
    details: () => disclosure(catalog, opts.globalName),
  } as Analytics<BuiltInCatalog & E>;

  if (opts.globalName) {
    try {
      (globalThis as Record<string, unknown>)[opts.globalName] = instance;
    } catch {
      // a frozen global object: devtools access is a nicety, not worth failing for
    }
  }
  return instance;
}

/** The event's name for the audit, if malformed native input has one at all. */
function nativeName(event: unknown): string {
  const m = typeof event === 'string' ? /"name"\s*:\s*"([^"]{1,100})"/.exec(event) : undefined;
  const name = m ? m[1] : (event as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name.slice(0, 100) : '(malformed)';
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
