// The pure core's vocabulary: what a tab knows (State), the facts it is told (Fact), and the
// commands it gives (Effect). Nothing in src/core/ does I/O, reads a clock or a global, or draws a
// random number: the shell (src/core.ts, src/store.ts …) does, and feeds the results back as facts.
import type { ConsentState } from '../3-consent-gate.js';
import type { Valid } from '../2-validate.js';
import type { AuditEntry } from '../7-audit.js';
import type { Signals } from '../signals.js';
import type { WireEvent } from '../5-allow-list.js';
import type { ConfigChange, Metadata, OutboxEntry, StorageOp, StorageResult, StoredConfig } from './contract.js';

/** Milliseconds on a monotonic clock (performance.now() in the shell): every deadline uses it. */
export type Mono = number;

/** What the options fix for the life of the instance. */
export interface Settings {
  projectKey: string;
  apiHost: string;
  intervalMs: number;
  firstRunGrace: boolean;
  respectPrivacySignals: boolean;
  devBuild: boolean;
  force: boolean;
  embedderPolicyOff: boolean;
  sessionId: string;
  /** Entries per add or remove (one transaction each: IndexedDB clones every value on the main thread). */
  writeChunk: number;
  /** Entries per list and per request: a task or two of cloning, JSON and gzip, whatever waits. */
  batch: number;
}

// ---- facts -------------------------------------------------------------------------------------

export type Input =
  | { type: 'start' }
  /** Validated events, each with its uuid (drawn by the shell). */
  | { type: 'record'; events: Valid[]; uuids: string[] }
  | { type: 'set-choice'; enabled: boolean; ask: number }
  | { type: 'clear'; analyticsId: string; ask: number }
  | { type: 'set-metadata'; metadata: Metadata; ask: number }
  | { type: 'flush'; ask: number }
  | { type: 'shutdown'; ask: number }
  /** A storage op's result (`id` is the op's, in issue order). */
  | { type: 'stored'; id: number; op: StorageOp; result: StorageResult }
  /** Another tab changed the stored config (`emptied`: it ended what was recorded before it). */
  | ({ type: 'heard' } & Announce)
  /** Another tab wrote events (`flush`: and its host asked to send now). */
  | { type: 'wrote'; flush: boolean }
  /** A request's answer: a status (0: none came, or it was aborted), a redirect is not delivery. */
  | { type: 'answer'; id: number; status: number; redirected: boolean; quotaLimited: boolean; error?: string }
  | { type: 'lead'; leading: boolean }
  | { type: 'transport'; result: 'ready' | 'failed' | 'hung' | 'unusable'; problem?: string }
  | { type: 'page'; page: 'shown' | 'hidden' | 'closing' | 'restored' }
  | { type: 'online' }
  /** The database connection was closed under us (site data cleared, a newer build upgrading): read again. */
  /** The connection went: the site's data cleared (or a disk error), or `upgraded` by a newer build (the data kept). */
  | { type: 'storage-lost'; upgraded?: true }
  /** A wake-up asked for (timers due by `now` fire). */
  | { type: 'tick' };

/** Every input carries the facts of its moment. */
export type Fact = Input & {
  now: Mono;
  /** The wall clock (ms since the epoch): only for what is stored or shown. */
  wall: number;
  signals: Signals;
  /** A uniform random number in [0, 1), for backoff jitter. */
  random: number;
};

// ---- effects -----------------------------------------------------------------------------------

export interface Announce {
  change: 'choice' | 'clear' | 'metadata';
  choice: 'enabled' | 'disabled' | 'unset';
  /** It ended what came before it (an opt-out or clear): others hold until they read it. */
  emptied?: true;
  /**
   * What was stamped after it, which is not ended on hearing (storage judges it): under `cut`, the
   * cut it made as stored; under `analyticsId`, a clear's new id (a clear its page journaled as it
   * closed: the cut it will make is not known). Neither: everything ends.
   */
  cut?: number;
  analyticsId?: string;
}

export type Effect =
  | { type: 'storage'; id: number; op: StorageOp }
  /**
   * What this tab alone holds — events never written, changes not stored — kept synchronously so
   * that it survives a closing page (the contract's journal), replacing what it kept before.
   */
  | { type: 'journal'; entries: OutboxEntry[]; changes: { id: string; change: ConfigChange }[] }
  /** One request. `by`: not started after this (a tab busy past it sends nothing it may no longer be allowed to). */
  | { type: 'send'; id: number; batch: WireEvent[]; by: Mono }
  /** Stop that request; its answer still comes (with no status), once what was written may have landed. */
  | { type: 'abort'; id: number }
  | ({ type: 'announce' } & Announce)
  | { type: 'wrote'; flush: boolean }
  | { type: 'wake'; at: Mono | undefined }
  | { type: 'audit'; entry: Omit<AuditEntry, 'time'> }
  | { type: 'load-transport' }
  | { type: 'lead'; lead: boolean }
  | { type: 'notify'; state: ConsentState }
  /** A host call is done: resolve its promise. */
  | { type: 'done'; ask: number }
  /** Everything is released: close the shell. */
  | { type: 'closed' };

// ---- state -------------------------------------------------------------------------------------

/**
 * How far this tab knows the stored config: not read yet; read; to be read again (a result of an
 * op issued after `after` ends it; `hold`: nothing is sent meanwhile, as what came before may have
 * ended); or unreadable (storage failed: off).
 */
export type Known = { k: 'unread' } | { k: 'read' } | { k: 'reread'; after: number; hold: boolean } | { k: 'unreadable' };

export interface Consent {
  /** The stored config as last read, with this tab's own changes not yet stored applied. */
  config: StoredConfig;
  known: Known;
  /** A read of storage was ever trusted here (the config is not only this tab's own changes). */
  everRead: boolean;
  /** Another tab announced an opt-out, and no stored choice of ours or opt-in heard since: off. */
  heardOff: boolean;
  /** The gate's answer the host was last told. */
  told: ConsentState;
}

/** A change of the host's not yet stored: the asks wait for it. An opt-in knows the cut it was made under (`base`). */
export interface Change extends ConfigChange {
  asks: number[];
  base?: number;
  /** New for every change and merge (a journaled change is applied once per id). */
  id?: number;
}

/** An event recorded before the stored choice was read, with the clocks when it was. */
export interface Held {
  event: Valid;
  uuid: string;
  now: Mono;
  wall: number;
}

/** Leadership (one tab delivers the shared outbox): not asked for, asked for, or known. */
export type Lead = 'idle' | 'asking' | 'leading' | 'following';

/**
 * Named timers (deadlines on the monotonic clock). Armed, a timer also says "not before": a
 * request waits for `retry`, a storage retry for `storage`, a transport reload for `reload`.
 *   pass      the flush window ends: a delivery pass
 *   retry     a failed request's backoff (at least 30 s after a 429)
 *   reload    the transport's reload backoff
 *   storage   a failed storage op's backoff
 *   quota     the endpoint said the project is over its quota: drop for a minute
 *   settle    an opt-out waits for other tabs' requests: look again
 *   settleBy  …at most until then
 *   shutdown  shutdown() waits at most until then
 */
export type TimerName = 'pass' | 'retry' | 'reload' | 'storage' | 'quota' | 'settle' | 'settleBy' | 'shutdown';
export type Timers = Partial<Record<TimerName, Mono>>;

/** The outbox as this tab sees it. */
export interface OutboxView {
  /** Accepted here, in no write yet: the only copy. */
  unwritten: OutboxEntry[];
  /** What this tab may send: its own accepted events (until written, or ended) and what its last list found. */
  known: Map<string, OutboxEntry>;
  /** Ended in this tab's audit (never judged or audited again); `false` until removed from storage. Bounded. */
  ended: Map<string, boolean>;
  attempts: Map<string, number>;
  /** This tab's mark may be in storage: removed once no request of ours is under way. */
  marked: boolean;
  /** Writes fail (why): what only this tab holds, it sends itself. */
  stranded?: string;
}

/** The request under way. Aborted, it stays until its answer comes: its bytes may still land (an opt-out waits). */
export interface Flight {
  id: number;
  entries: OutboxEntry[];
  wire: WireEvent[];
  aborted: boolean;
}

export interface TransportState {
  state: 'not-loaded' | 'loading' | 'ready' | 'failed' | 'hung' | 'unusable';
  problem?: string;
  failures: number;
}

/** Host calls waiting: flush() for the pass; an opt-out or clear for other tabs' requests; shutdown(). */
export interface Asks {
  flush: number[];
  settle: number[];
  shutdown?: number;
}

/** What one tab knows. Only step() changes it. */
export interface State {
  readonly s: Settings;
  /** The latest `now` seen: the core's clock never goes back. */
  now: Mono;
  /** 'hidden' still runs; 'closing' (pagehide) may run nothing later; 'closed' after shutdown(). */
  page: 'shown' | 'hidden' | 'closing' | 'closed';
  consent: Consent;
  /** The host's changes not yet stored, oldest first: one being written, one gathering the next calls. */
  changes: Change[];
  /** Recorded before the stored choice was read (bounded). */
  held: Held[];
  lead: Lead;
  timers: Timers;
  outbox: OutboxView;
  /** The storage op under way (one at a time), and when it was asked for (monotonic, and wall: a sleeping machine stops the first). */
  io?: { id: number; op: StorageOp; at: number; wall: number };
  storageFailures: number;
  flight?: Flight;
  transport: TransportState;
  /** Failed requests in a row, and the last one's error. */
  failures: number;
  lastError?: string;
  asks: Asks;
  /**
   * A delivery pass is wanted as soon as one can run: 'due' (the flush window ended), 'asked'
   * (flush(), the page hidden, back online: another tab that delivers is asked too), or 'sweep'
   * (the user said no: what waits in storage ends, each with the reason).
   */
  pass: false | 'due' | 'asked' | 'sweep';
  /** Ids for storage ops and requests, in issue order. */
  ids: number;
  /** Append events' native counter (`event_id`). */
  eventCounter: number;
}

/** One step's context: the fact's moment, and where effects go. */
export interface Step {
  st: State;
  fx: Effect[];
  now: Mono;
  wall: number;
  signals: Signals;
  random: number;
}
