// createAnalytics(): the part a host's page loads at startup, kept tiny (a size budget in CI
// checks it): the options check, the intake record() writes to (1-record.ts), and the devtools
// handle. The stages themselves (core.ts: the stored choice, validation, the outbox, the audit)
// are a chunk fetched right after, and posthog-js one fetched only when something may be sent.
import { createIntake, type Intake } from './1-record.js';
import type { ConsentState } from './3-consent-gate.js';
import type { AuditEntry } from './7-audit.js';
import type { BuiltInCatalog, Catalog, PropsFor } from './catalog.js';
import type { ConfigSnapshot, Core } from './core.js';
import { inBrowser } from './in-browser.js';
import { storeOptOut } from './opt-out.js';
import { embedderForbids } from './embedder.js';
import { CREATED_EVENT } from './toggle-element.js';
import { resolveOptions, type AnalyticsOptions, type ResolvedOptions } from './options.js';

export type AnalyticsState = ConsentState;
export type { ConfigSnapshot };

type LooseProps = Record<string, boolean | number | string | null | undefined>;

export interface Analytics<C extends Catalog = BuiltInCatalog> {
  /**
   * Resolves once the stored choice is read (or found unreadable, or the module's own code could
   * not be fetched; at once under a forbidding embedder policy, or off the browser). Never
   * rejects. Nothing needs to wait for it: record() before it is kept and judged after.
   */
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
  /**
   * Stops this instance, for good: what was recorded is judged, what waits stays in the outbox
   * for the next page (or another tab), a choice or clear() under way is stored first, a request
   * in flight is stopped; listeners, the devtools global and the delivery lock are let go.
   * Resolves within SHUTDOWN_WAIT_MS (3 s) even if storage or the network hangs. Afterwards
   * isEnabled() is false and record() is audited as dropped.
   */
  shutdown(): Promise<void>;
  /** The plain-language disclosure: what is collected and why, what never is, how to opt out and audit. */
  details(): string;
}

/** The stages' chunk could not be fetched (offline, a deploy in between): it is fetched again after this. */
const RELOAD_MS = 5000;

type Stages = { startCore(opts: ResolvedOptions, notify: (state: AnalyticsState) => void, intake: Intake): Core };
/** The stages' chunk once fetched (off the browser, inert.ts): later instances in the page start at once. */
let stages: Stages | undefined;

export function createAnalytics<const E extends Catalog = Record<never, never>>(options: AnalyticsOptions<E>): Analytics<BuiltInCatalog & E> {
  const opts = resolveOptions(options); // the only throw: a programmer error at this call
  const browser = inBrowser(); // off one, the instance is inert: no global, no handle, nothing sent
  const listeners = new Set<(s: AnalyticsState) => void>();
  let core: Core | undefined;
  let closed = false;
  let unkept = false; // an opt-out the facade could not journal: the stages store it

  const intake = createIntake(() => core?.take(true)); // a burst is judged a slice per task
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
  // failed fetch is tried again; meanwhile calls wait for it, and nothing is sent. Under an
  // embedder policy that forbids analytics nothing can ever be sent: they are fetched only when
  // something asks what they know (config(), audit(), details(), a toggle, setEnabled(true)).
  const forbidden = opts.embedderPolicy === 'off' || embedderForbids();
  let firstTry!: () => void;
  const tried = new Promise<void>((resolve) => (firstTry = resolve));
  let loaded: Promise<Core> | undefined;
  const load = (): Promise<Core> =>
    (loaded ??= (async () => {
      for (;;) {
        if (closed) return new Promise<Core>(() => undefined); // shut down before it came: never starts
        try {
          stages ??= browser ? await import('./core.js') : await import('./inert.js');
          core = stages.startCore(opts, notify, intake);
          if (unkept) void core.setEnabled(false);
          firstTry();
          // What was recorded meanwhile: under a policy that forbade it, never judged (the tag may be gone by now).
          if (forbidden) core.refuse('embedder-policy');
          else core.take(true);
          return core;
        } catch {
          firstTry();
          await new Promise((r) => setTimeout(r, RELOAD_MS));
        }
      }
    })());
  if (forbidden) firstTry(); // nothing to wait for: off, whatever is stored
  else void load();
  // Loaded: now, in the host's own task (what it records right after a clear() comes after it); else once loaded.
  const withCore = <T>(use: (c: Core) => Promise<T>): Promise<T> =>
    (closed && !core ? Promise.resolve(undefined as T) : core ? new Promise<T>((r) => r(use(core!))) : load().then(use)).catch(() => undefined as T);
  const entries = () => {
    if (!core) {
      if (!closed) void load(); // under a forbidding policy, asking is what fetches them
      return [];
    }
    core.take(); // what was recorded an instant ago, judged now
    return core.audit();
  };

  const instance: Analytics<BuiltInCatalog & E> = {
    ready: tried.then(() => core?.ready),
    record: intake.record,
    recordNative: intake.native,
    isEnabled: () => !closed && (core?.state().enabled ?? false), // now: a meta tag added since the last change counts too; off once shut down
    setEnabled(enabled: boolean) {
      // What was recorded before the change is judged before it (an opt-out then ends it, an opt-in does not carry it over).
      if (core || enabled === true) return withCore((c) => (c.take(), c.setEnabled(enabled)));
      // Without the stages (loading, or their chunk 404s): an opt-out is journaled from here, now;
      // every tab's next storage op applies it, the stages' first read too.
      unkept ||= !storeOptOut();
      return Promise.resolve();
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
    clear: () => withCore((c) => (c.take(), c.clear())),
    setMetadata: (props) => withCore((c) => c.setMetadata(props)),
    // Nothing can be sent without the stages: if their chunk cannot be fetched, there is nothing to wait for.
    flush: () => tried.then(() => core && (core.take(true), core.flush())),
    async shutdown() {
      if (closed) return;
      await tried; // the stages, if they can be had, take what was recorded and stop cleanly
      closed = true;
      core?.take();
      listeners.clear();
      if (opts.globalName && (globalThis as Record<string, unknown>)[opts.globalName] === instance) {
        delete (globalThis as Record<string, unknown>)[opts.globalName];
      }
      if (core) await core.shutdown();
    },
    details() {
      if (core) return core.details();
      if (!closed) void load();
      return 'The disclosure is loading; ask again in a moment.';
    },
  } as Analytics<BuiltInCatalog & E>;

  if (opts.globalName && browser) setGlobal(opts.globalName, instance);
  return instance;
}

let toldTakeover = false;

/** The devtools handle. A second instance takes it over: said once, in the console. Unbound toggles bind now. */
function setGlobal(name: string, instance: unknown): void {
  const g = globalThis as Record<string, unknown>;
  if (g[name] !== undefined && g[name] !== instance && !toldTakeover) {
    toldTakeover = true;
    console.info(`re-analytics-web: globalThis.${name} is now the newest instance; the earlier one still runs.`);
  }
  try {
    g[name] = instance;
    globalThis.dispatchEvent(new Event(CREATED_EVENT));
  } catch {
    // a frozen global object: devtools access is a nicety, not worth failing for
  }
}
