// The pure core's vocabulary: what a tab knows (State), the facts it is told (Input), and the
// commands it gives (Effect). Nothing in src/decide/ does I/O, reads a clock or a global, or
// draws a random number: the shell (src/shell/) does all of that and feeds the results back.
import type { ConsentState } from '../3-consent-gate.js';
import type { Valid } from '../2-validate.js';
import type { AuditEntry } from '../7-audit.js';
import type { Signals } from '../signals.js';
import type { Metadata, OutboxEntry, StoredConfig } from './config.js';
import type { WireEvent } from '../5-allow-list.js';

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
  /**
   * At most this many entries per add or remove (each one transaction): IndexedDB clones every
   * value on the main thread as it is put, ~0.1 ms each, and no task of ours may take 4 ms.
   */
  writeChunk: number;
  /**
   * At most this many entries per list and per request: a list's values are cloned out of
   * IndexedDB, judged and sent in a task or two, which must stay short whatever waits.
   */
  batch: number;
}

/** A change of the stored config, applied inside one transaction (applyChange in config.ts). */
export interface ConfigChange {
  choice?: 'enabled' | 'disabled';
  choiceTime?: string;
  /** clear(): this new id, metadata wiped. */
  analyticsId?: string;
  /** Merged into what is stored (then bounded again). */
  metadata?: Metadata;
  /** It empties the outbox: asked for at this wall-clock time (an opt-out or a clear). */
  cutAt?: number;
}

/** Storage operations; one at a time per tab, each one transaction. */
export type StorageOp =
  /** Read the config (created or migrated on a first start). */
  | { op: 'read' }
  /** Apply `change` to the config; with `empty`, empty the outbox in the same transaction. */
  | { op: 'change'; change: ConfigChange; empty: boolean }
  /** Add entries under the stored id (refused if the stored choice is off or the id differs; skipped if stored already); evict past the bounds, never what is in flight. */
  | {
      op: 'add';
      entries: OutboxEntry[];
      /**
       * The page is closing: no later task runs, so nothing is read first — the entries are put at
       * once (whoever lists them judges them, id, cut and choice included) and the size recounted.
       */
      closing?: boolean;
    }
  /** Read the oldest `limit` waiting entries of this project and mark them as in flight (so no tab evicts them). */
  | { op: 'list'; limit: number }
  /** Remove delivered or dropped entries (and, with `unmark`, this tab's in-flight mark). */
  | { op: 'remove'; uuids: string[]; unmark: boolean };

/** What a storage operation found; `config` is the stored config as read in its transaction. */
export interface StorageResult {
  ok: boolean;
  error?: string;
  config?: StoredConfig;
  /** The config record was missing (a first start, or site data was cleared under us). */
  created?: boolean;
  /** list: the oldest waiting entries, oldest first. */
  entries?: OutboxEntry[];
  /** list: more wait beyond these. */
  more?: boolean;
  /** add: entries evicted past the bounds; change+empty: entries the emptying removed (not those in flight). */
  dropped?: OutboxEntry[];
  /** read, change: another tab has a request in flight (its mark in storage has not expired). */
  othersFlying?: boolean;
  /** add: uuids refused, because the stored choice is off or the stored id is another. */
  refused?: string[];
}

export type Input =
  | { type: 'start' }
  | { type: 'record'; events: Valid[]; uuids: string[] }
  | { type: 'set-choice'; enabled: boolean; ask: number }
  | { type: 'clear'; analyticsId: string; ask: number }
  | { type: 'set-metadata'; metadata: Metadata; ask: number }
  | { type: 'flush'; ask: number }
  | { type: 'shutdown'; ask: number }
  | { type: 'stored'; id: number; op: StorageOp; seq: number; result: StorageResult }
  | { type: 'heard'; change: 'choice' | 'clear' | 'metadata'; choice: 'enabled' | 'disabled' | 'unset'; emptied?: true }
  | { type: 'wrote'; flush: boolean }
  | { type: 'answer'; id: number; status: number; redirected: boolean; quotaLimited: boolean; error?: string }
  | { type: 'lead'; leading: boolean }
  | { type: 'transport'; result: 'ready' | 'failed' | 'hung' | 'unusable'; problem?: string }
  | { type: 'page'; page: 'shown' | 'hidden' | 'closing' | 'restored' }
  | { type: 'online' }
  /** The database connection was closed under us (site data cleared, another tab upgrading): read it again. */
  | { type: 'storage-lost' }
  | { type: 'tick' };

/** Every input carries the facts of its moment. */
export type Fact = Input & {
  now: Mono;
  /** The wall clock (ms since the epoch): only for what is stored or shown (TTL, timestamps). */
  wall: number;
  signals: Signals;
  /** A uniform random number in [0, 1) for backoff jitter. */
  random: number;
};

export type Effect =
  | { type: 'storage'; id: number; op: StorageOp; seq: number }
  | { type: 'send'; id: number; batch: WireEvent[] }
  /** The page is closing: one keepalive request, whose answer nobody reads. */
  | { type: 'send-on-close'; batch: WireEvent[] }
  | { type: 'abort'; id: number }
  | { type: 'announce'; change: 'choice' | 'clear' | 'metadata'; choice: 'enabled' | 'disabled' | 'unset'; emptied?: true }
  /** Tell the delivering tab we wrote (`flush`: and send it now). */
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

/** What one tab knows. Only step() changes it. */
export interface State {
  s: Settings;
  now: Mono;
  wall: number;
  signals: Signals;
  random: number;
  closed: boolean;
  page: 'shown' | 'hidden' | 'closing';

  // ---- consent ----
  /** The stored config as last read, written or heard; `loaded` false until the first read. */
  config: StoredConfig;
  loaded: boolean;
  /** Storage cannot be read or written: we no longer know what the user chose. */
  unreadable: boolean;
  /**
   * Storage must be read again. `heard`: another tab changed its metadata or opted in; nothing
   * of that ends an event, so sending goes on and the host sees no change until the read.
   * `unknown`: another tab ended what came before (a clear, an opt-out even if replaced at once by
   * an opt-in) or messages may have been lost (back from the bfcache, storage lost): the gate
   * says 'loading', and nothing is sent, until the read.
   */
  stale: false | 'heard' | 'unknown';
  /** Another tab announced an opt-out: off until this tab stores or hears a newer opt-in. */
  heardOff: boolean;
  /** The last storage op issued when a message was heard (or storage lost): results up to it may predate it. */
  heardSeq: number;
  /** The user's choice not yet stored (retried until it is). */
  wish?: { choice: 'enabled' | 'disabled'; choiceTime: string; asks: number[]; at: number; /** an opt-out not yet stored came first: the outbox is emptied all the same */ empty?: boolean };
  clearing?: { analyticsId: string; asks: number[]; at: number };
  metadata?: { metadata: Metadata; asks: number[] };
  /** Events validated before the stored choice was read (bounded). */
  held: { event: Valid; uuid: string; now: number; wall: number }[];
  notified: ConsentState;
  eventCounter: number;

  // ---- delivery ----
  mode: 'indexeddb' | 'memory';
  modeProblem?: string;
  /** Accepted, not yet written. */
  staged: OutboxEntry[];
  /** What this tab knows waits (its own, and what it last listed as the delivering tab). */
  known: Map<string, OutboxEntry>;
  attempts: Map<string, number>;
  /** The storage op in flight (one at a time), and the seq it was issued at. */
  io?: { id: number; op: StorageOp; seq: number };
  seq: number;
  /** The request in flight. */
  flight?: { id: number; uuids: string[]; entries: OutboxEntry[]; wire: WireEvent[] };
  leading: boolean;
  wantLead: boolean;
  /** Since asking to lead, it is known whether this tab leads (or another does). */
  leadKnown: boolean;
  transport: 'not-loaded' | 'loading' | 'ready' | 'failed' | 'hung' | 'unusable';
  transportProblem?: string;
  loadFailures: number;
  loadAgainAt: Mono;
  failures: number;
  lastError?: string;
  retryAt: Mono;
  quotaUntil: Mono;
  /** When the flush window ends (something waits). */
  flushAt?: Mono;
  /** A pass was asked for now (flush(), another tab's flush, hidden page, online). */
  passWanted: boolean;
  /** Storage failed: the next read (or, in memory mode, write) is not tried before this. */
  storageRetryAt: Mono;
  storageFailures: number;
  /** Entries audited as sent or dropped whose removal from storage is not done yet: never judged again. */
  removals: Set<string>;
  /** Entries this tab audited at its own opt-out or clear: the emptying's result does not audit them again. */
  discarded: Set<string>;
  /** The wake last asked of the shell. */
  wakeAt?: Mono;
  /** shutdown(): by then it closes, delivered or not. */
  shutdownBy?: Mono;
  /** This tab's request was aborted: its in-flight mark is to be removed, so that other tabs know it ended. */
  unmark: boolean;
  /**
   * An aborted request not answered yet (the shell answers every request, an aborted one with no
   * status): its body may still be reaching the endpoint, so its in-flight mark stays until then.
   */
  stopping?: number;
  /** An opt-out or clear is stored, but another tab's request is still in flight: the host is answered once it has ended. */
  settling?: { asks: number[]; until: Mono; checkAt: Mono };
  /** The user's wish turned off: what waits in storage is to be dropped, each with the reason (one list). */
  sweep: boolean;
  /** Host flush() calls waiting for the pass to end. */
  flushAsks: number[];
  shutdownAsk?: number;
  /** Ids for storage ops and requests. */
  nextId: number;
}
