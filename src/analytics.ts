// createAnalytics(): wires the stages together. The data flow, one file per stage:
//   1-record → 2-validate → 3-consent-gate → 4-outbox → 5-allow-list → 6-transport → 7-audit
// Nothing here throws into the host after option validation, and nothing blocks it.
import { nanoid } from 'nanoid';
import { fromNative, fromRecord, type Recorded } from './1-record';
import { validate } from './2-validate';
import { decide, type ConsentFacts, type ConsentState } from './3-consent-gate';
import { createOutbox, type Outgoing } from './4-outbox';
import { wireName } from './5-allow-list';
import { loadTransport } from './6-transport';
import { createAudit, type AuditEntry } from './7-audit';
import { CATALOG, type BuiltInCatalog, type Catalog, type PropsFor } from './catalog';
import { disclosure } from './disclosure';
import { resolveOptions, type AnalyticsOptions } from './options';
import { locationProps } from './root-domain';
import { readSignals } from './signals';
import { connectTabs, type Change } from './tabs';
import { safeString } from './plain';
import { forgetLegacy, newAnalyticsId, openConfigStore, plainMetadata, type Metadata, type StoredConfig } from './store';

export type AnalyticsState = ConsentState;

export interface ConfigSnapshot {
  analyticsId: string;
  sessionId: string;
  enabled: boolean;
  reason: string;
  metadata: Metadata;
  storage: 'indexeddb' | 'unavailable';
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
  /** Hands what is pending to the transport now (if consent allows). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
  details(): string;
}

export function createAnalytics<E extends Catalog = Record<never, never>>(options: AnalyticsOptions<E>): Analytics<BuiltInCatalog & E> {
  const opts = resolveOptions(options); // the only throw: a programmer error at this call
  const catalog: Catalog = { ...CATALOG, ...opts.events };
  const audit = createAudit(opts.auditCapacity);
  const store = openConfigStore();
  const sessionId = nanoid();
  let eventCounter = 0;
  let closed = false;
  let stored: StoredConfig = { analyticsId: '', choice: 'unset', metadata: {} };
  let choice: ConsentFacts['stored'] = 'loading';
  const listeners = new Set<(s: AnalyticsState) => void>();

  /** Everything the gate weighs, read now. */
  const facts = (): ConsentFacts => {
    const signals = readSignals();
    return {
      stored: choice,
      devBuild: opts.devBuild,
      force: opts.force,
      automation: signals.automation,
      privacySignal: opts.respectPrivacySignals && signals.privacySignal,
      embedderForbids: opts.embedderPolicy === 'off' || signals.embedderForbids,
    };
  };
  const consent = () => decide(facts());
  let state = consent();

  const dropped = (name: string, reason: string) => audit.add({ name, outcome: 'dropped', reason });

  const outbox = createOutbox({
    consent,
    intervalMs: opts.flushIntervalMs,
    dropped: (e: Outgoing, reason) => dropped(wireName(e), reason),
    loadTransport: () =>
      loadTransport({
        projectKey: opts.projectKey,
        apiHost: opts.apiHost,
        audit,
        identity: () => ({ distinctId: stored.analyticsId, sessionId }),
        metadata: () => stored.metadata,
      }).catch((err: unknown) => (err instanceof Error ? err : new Error(safeString(err)))), // the outbox drops with this as reason
  });

  /** Re-decides after any change of facts; applies an "off" at once and tells subscribers. */
  const refresh = () => {
    const next = consent();
    const changed = next.enabled !== state.enabled || next.reason !== state.reason;
    state = next;
    if (!next.enabled && next.reason !== 'loading') outbox.discard(next.reason);
    if (next.enabled) outbox.schedule();
    if (changed) {
      for (const listener of [...listeners]) {
        try {
          listener({ ...next });
        } catch {
          // a host's listener must not break the others, nor us
        }
      }
    }
  };

  /** Another tab opted out while our first read was in flight: that read may predate it. */
  let optOutWhileLoading = false;
  const ready: Promise<void> = store.load().then(
    (config) => {
      stored = config;
      choice = optOutWhileLoading ? 'disabled' : config.choice;
    },
    () => {
      choice = 'unreadable'; // fail closed: we cannot know what the user chose
      stored = { ...stored, analyticsId: newAnalyticsId() };
    },
  ).then(refresh);

  const unreadable = () => choice === 'unreadable';

  /** Takes a config read from (or written to) storage as the truth, and applies it. */
  const adopt = (config: StoredConfig) => {
    stored = config;
    choice = config.choice;
    refresh();
  };

  /** Storage failed after start: we no longer know what is stored, so send nothing. */
  const failClosed = () => {
    choice = 'unreadable';
    refresh();
  };

  /**
   * Counts local changes. A storage result is applied only if no local change began after
   * it was asked for: IndexedDB answers in order, but our in-memory copy runs ahead of it.
   */
  let changes = 0;

  /**
   * Writes a change, then tells the other tabs. The in-memory copy changes first, so the change
   * applies here at once. `change` must be pure (it runs on memory and in the transaction).
   */
  const persist = async (kind: Change, change: (c: StoredConfig) => StoredConfig) => {
    const mine = ++changes;
    stored = change(stored);
    if (unreadable()) return;
    try {
      const result = await store.change(change);
      if (mine === changes && !unreadable()) adopt(result); // it also carries what other tabs wrote before us
      tabs.announce({ change: kind, choice: result.choice });
    } catch {
      failClosed(); // an opt-out that cannot be stored must not be undone by a later re-read
    }
  };

  /** Another tab changed the stored config: an opt-out applies now, the rest after re-reading storage. */
  const tabs = connectTabs(({ change, choice: announced }) => {
    if (closed || unreadable()) return;
    if (announced === 'disabled') {
      changes++; // an older write of ours, landing later, must not turn this back on
      if (choice === 'loading') optOutWhileLoading = true;
      else choice = 'disabled';
      refresh();
    }
    if (change === 'clear') outbox.discard('cleared'); // they were recorded under the old id
    const asked = changes;
    void ready
      .then(() => store.load())
      .then((config) => {
        if (!closed && asked === changes && !unreadable()) adopt(config); // else a newer local change wins
      }, failClosed);
  });

  const accept = (rec: Recorded) => {
    const result = validate(rec, catalog, { app_env: opts.appEnv, ...locationProps(globalThis.location?.href ?? '') });
    if (!result.ok) return dropped(typeof rec.name === 'string' ? rec.name.slice(0, 100) : '(no name)', result.reason);
    const e = result.event;
    outbox.push({ ...e, uuid: uuid4(), ...(e.kind === 'Append' ? { eventId: ++eventCounter } : {}) });
  };

  const setEnabled = async (enabled: boolean) => {
    await ready;
    const next = enabled === true ? 'enabled' : 'disabled'; // when unsure, off
    const choiceTime = new Date().toISOString();
    if (!unreadable()) choice = next;
    refresh(); // an opt-out discards pending events now, before the write
    const change = (c: StoredConfig): StoredConfig => ({ ...c, choice: next, choiceTime });
    // Storage failed earlier: still try to store an opt-out (always safe), so the next page
    // load honours it; this page stays off whatever the answer.
    if (unreadable() && next === 'disabled') await store.change(change).catch(() => undefined);
    await persist('choice', change);
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
    ready,
    record(name: unknown, props?: unknown) {
      guarded(() => fromRecord(name, props), () => safeString(name).slice(0, 100));
    },
    recordNative(event: unknown) {
      guarded(() => fromNative(event), () => nativeName(event));
    },
    isEnabled: () => consent().enabled, // now: a meta tag added since the last change counts too
    setEnabled,
    enable: () => setEnabled(true),
    disable: () => setEnabled(false),
    subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    async config() {
      await ready;
      const storage = unreadable() ? 'unavailable' : 'indexeddb';
      const { enabled, reason } = consent(); // now, like isEnabled()
      return { analyticsId: stored.analyticsId, sessionId, enabled, reason, metadata: { ...stored.metadata }, storage };
    },
    audit: () => audit.entries(),
    printAudit() {
      const rows = audit.entries().map((e) => ({ time: e.time, event: e.name, outcome: e.outcome, reason: e.reason ?? '', properties: e.properties ? JSON.stringify(e.properties) : '' }));
      console.table(rows);
    },
    async clear() {
      await ready;
      const analyticsId = newAnalyticsId(); // once: the same id in memory and in storage
      outbox.discard('cleared');
      forgetLegacy();
      await persist('clear', (c) => ({ ...c, analyticsId, metadata: {} }));
    },
    async setMetadata(props) {
      await ready;
      let clean: Metadata;
      try {
        clean = plainMetadata(props);
      } catch {
        return; // unreadable input (a throwing getter): nothing to store
      }
      await persist('metadata', (c) => ({ ...c, metadata: { ...c.metadata, ...clean } }));
    },
    async flush() {
      await ready;
      await outbox.flush().catch(() => undefined);
    },
    async shutdown() {
      if (closed) return;
      closed = true;
      await ready;
      await outbox.flush().catch(() => undefined);
      outbox.close();
      tabs.close();
      listeners.clear();
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

/** A v4 UUID from getRandomValues (crypto.randomUUID is missing outside secure contexts). */
function uuid4(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
