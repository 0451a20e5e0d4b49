// createAnalytics(): the part a host's page loads at startup, kept tiny (a size budget in CI
// checks it): the options check, the intake record() writes to (1-record.ts), and the devtools
// handle. The stages themselves (core.ts: the stored choice, validation, the outbox, the audit)
// are a chunk fetched right after, and posthog-js one fetched only when something may be sent.
import { createIntake } from './1-record.js';
import type { ConsentState } from './3-consent-gate.js';
import type { AuditEntry } from './7-audit.js';
import type { BuiltInCatalog, Catalog, PropsFor } from './catalog.js';
import type { ConfigSnapshot, Core } from './core.js';
import { inBrowser, inert } from './inert.js';
import { storeOptOut } from './opt-out.js';
import { resolveOptions, type AnalyticsOptions } from './options.js';

export type AnalyticsState = ConsentState;
export type { ConfigSnapshot };

type LooseProps = Record<string, boolean | number | string | null | undefined>;

export interface Analytics<C extends Catalog = BuiltInCatalog> {
  /** Resolves once the stored config is loaded (or found unusable, or the module's own code could not be fetched). Never rejects. */
  readonly ready: Promise<void>;
  /**
   * Records an event of the catalog (names and properties autocomplete). Never throws, and
   * costs a queue push: checking happens just after. Bad input becomes a 'dropped' audit entry.
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
  /** Oldest first, at most `auditCapacity` entries (events recorded an instant ago are judged first). */
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

/** The stages' chunk could not be fetched (offline, a deploy in between): it is fetched again after this. */
const RELOAD_MS = 5000;

/** The stages' chunk once fetched: later instances in the page start at once. */
let stages: typeof import('./core.js') | undefined;

export function createAnalytics<E extends Catalog = Record<never, never>>(options: AnalyticsOptions<E>): Analytics<BuiltInCatalog & E> {
  const opts = resolveOptions(options); // the only throw: a programmer error at this call
  if (!inBrowser()) return inert(opts.auditCapacity) as unknown as Analytics<BuiltInCatalog & E>; // server-side: off, no global, no handle
  const listeners = new Set<(s: AnalyticsState) => void>();
  let core: Core | undefined;
  let closed = false;

  const intake = createIntake(() => core?.take(intake));
  const notify = (state: AnalyticsState) => {
    for (const listener of [...listeners]) {
      try {
        listener({ ...state });
      } catch {
        // a host's listener must not break the others, nor us
      }
    }
  };

  // The stages, fetched now (the stored choice must be read before anything is decided). A
  // failed fetch is tried again; meanwhile calls wait for it, and nothing is sent.
  let firstTry!: () => void;
  const tried = new Promise<void>((resolve) => (firstTry = resolve));
  const loaded: Promise<Core> = (async () => {
    for (;;) {
      if (closed) return new Promise<Core>(() => undefined); // shut down before it came: never starts
      try {
        stages ??= await import('./core.js');
        core = stages.startCore(opts, notify);
        firstTry();
        core.take(intake); // what was recorded meanwhile
        return core;
      } catch {
        firstTry();
        await new Promise((r) => setTimeout(r, RELOAD_MS));
      }
    }
  })();
  const withCore = <T>(use: (c: Core) => Promise<T>): Promise<T> => (closed && !core ? Promise.resolve(undefined as T) : loaded.then(use).catch(() => undefined as T));
  const entries = () => {
    if (!core) return [];
    core.take(intake); // what was recorded an instant ago, judged now
    return core.audit();
  };

  const instance: Analytics<BuiltInCatalog & E> = {
    ready: tried.then(() => core?.ready),
    record: intake.record,
    recordNative: intake.native,
    isEnabled: () => !closed && (core?.state().enabled ?? false), // now: a meta tag added since the last change counts too; off once shut down
    setEnabled(enabled: boolean) {
      if (core || enabled === true) return withCore((c) => c.setEnabled(enabled));
      // Without the stages (loading, or their chunk 404s): an opt-out is stored from here, now; the stages apply it too when they come.
      void withCore((c) => c.setEnabled(false));
      return storeOptOut();
    },
    enable: () => instance.setEnabled(true),
    disable: () => instance.setEnabled(false),
    subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    config: () => withCore((c) => c.config()),
    audit: entries,
    printAudit() {
      console.table(entries().map((e) => ({ time: e.time, event: e.name, outcome: e.outcome, reason: e.reason ?? '', properties: e.properties ? JSON.stringify(e.properties) : '' })));
    },
    clear: () => withCore((c) => c.clear()),
    setMetadata: (props) => withCore((c) => c.setMetadata(props)),
    // Nothing can be sent without the stages: if their chunk cannot be fetched, there is nothing to wait for.
    flush: () => tried.then(() => core && (core.take(intake), core.flush())),
    async shutdown() {
      if (closed) return;
      await tried; // the stages, if they can be had, take what was recorded and stop cleanly
      closed = true;
      core?.take(intake);
      listeners.clear();
      if (opts.globalName && (globalThis as Record<string, unknown>)[opts.globalName] === instance) {
        delete (globalThis as Record<string, unknown>)[opts.globalName];
      }
      if (core) await core.shutdown();
    },
    details: () => core?.details() ?? 'The disclosure is loading; ask again in a moment.',
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
