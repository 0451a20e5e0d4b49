// Persistent state in IndexedDB, in a database of our own (never posthog-js's storage):
//   config  one record: the anonymous id, the user's choice, opt-in metadata, the outbox's size
//   outbox  events the consent gate accepted that have not been delivered yet (4-outbox.ts)
// Every change is one readwrite transaction, so tabs never see half of one. An opt-out or
// clear() empties the outbox in the very transaction that stores it: there is no moment at
// which the stored choice says "off" (or the id is new) while consented events still wait.
import { promisifyRequest } from 'idb-keyval';
import { nanoid } from 'nanoid';
import { unwrapNative } from './catalog.js';
import { isRecord } from './plain.js';

export type MetadataValue = boolean | number | string;
export type Metadata = Record<string, MetadataValue>;

export interface StoredConfig {
  /** The anonymous id. Any non-empty string is kept: hand-made and migrated ids must work. */
  analyticsId: string;
  /** The user's explicit choice; 'unset' until the user flips the toggle. */
  choice: 'enabled' | 'disabled' | 'unset';
  /** When the choice was made (ISO 8601), shown in config() so a user can check it. */
  choiceTime?: string;
  /** Opt-in metadata, sent with Identify as the native SDK does. */
  metadata: Metadata;
  /** The page load that made this id (first-run grace); absent for ids adopted or made before. */
  firstSessionId?: string;
}

/** One event waiting in the outbox: everything needed to send it from any tab, on any later visit. */
export interface OutboxEntry {
  /** UUID v7 (time-ordered): the IndexedDB key, so the outbox reads oldest first; the wire uuid. */
  uuid: string;
  /** Where it goes: the project key and host it was recorded for. */
  projectKey: string;
  apiHost: string;
  kind: 'Append' | 'Identify' | 'SetPersonProperties';
  name: string;
  props: Record<string, MetadataValue>;
  /** The event's time (its wire timestamp), ms since the epoch. */
  at: number;
  /** When the outbox took it, ms since the epoch: the TTL counts from here. */
  queuedAt: number;
  /** The id and page load it was recorded under: a cleared id never leaves. */
  distinctId: string;
  sessionId: string;
  eventId?: number;
  /** Shown in the audit when it is sent (e.g. properties the catalog removed). */
  note?: string;
  /** Its size as JSON, for the outbox's byte bound. */
  bytes: number;
}

export interface OutboxSize {
  count: number;
  bytes: number;
}

export const DB_NAME = 'rerun-analytics';
export const DB_VERSION = 2; // 1: config only (first versions); 2: + outbox
export const CONFIG = 'config';
export const OUTBOX = 'outbox';
const CONFIG_KEY = 'config';
const SIZE_KEY = 'outbox-size';
/** The old web build's localStorage key: its id is adopted so existing users keep it. */
export const LEGACY_KEY = 'rerun_config';
/** IndexedDB can hang (a blocked upgrade, a wedged profile); past this we treat it as failed. */
const TIMEOUT_MS = 3000;

export interface Storage {
  /** Runs `work` in one transaction over `stores`; resolves with its result once the transaction commits. */
  transaction<T>(stores: string[], mode: IDBTransactionMode, work: (tx: IDBTransaction) => T | Promise<T>): Promise<T>;
  /** Closes the connection (shutdown). */
  close(): void;
}

/**
 * Our database, opened lazily (and upgraded) once per instance; a failed or closed connection
 * is opened afresh on the next use. Every use is bounded by TIMEOUT_MS.
 */
export function openStorage(): Storage {
  let dbp: Promise<IDBDatabase> | undefined;
  let closed = false;
  const database = (): Promise<IDBDatabase> => {
    if (closed) return Promise.reject(new Error('storage closed (shut down)'));
    if (dbp) return dbp;
    const request = indexedDB.open(DB_NAME, DB_VERSION); // throws where IndexedDB does not exist
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(CONFIG)) db.createObjectStore(CONFIG);
      if (!db.objectStoreNames.contains(OUTBOX)) db.createObjectStore(OUTBOX);
    };
    const opening = promisifyRequest(request);
    dbp = opening;
    opening.then(
      (db) => {
        if (closed) return db.close();
        // Another tab upgrading to a newer version must not be blocked by us; nor a closed connection reused.
        db.onversionchange = () => (db.close(), (dbp = undefined));
        db.onclose = () => (dbp = undefined);
      },
      () => (dbp = undefined),
    );
    return opening;
  };
  return {
    transaction(stores, mode, work) {
      const run = (async () => {
        const db = await database();
        const tx = db.transaction(stores, mode);
        const done = promisifyRequest(tx as unknown as IDBRequest);
        done.catch(() => undefined); // reported through `result` or the await below
        let result: Awaited<ReturnType<typeof work>>;
        try {
          result = await work(tx);
        } catch (err) {
          try {
            tx.abort(); // all or nothing: never half a change
          } catch {
            // already finished
          }
          throw err;
        }
        await done;
        return result;
      })();
      run.catch(() => (dbp = undefined)); // open afresh next time: a failure may be a dead connection
      return withTimeout(run, TIMEOUT_MS);
    },
    close() {
      closed = true;
      void dbp?.then((db) => db.close(), () => undefined);
      dbp = undefined;
    },
  };
}

const read = <T>(tx: IDBTransaction, store: string, key: IDBValidKey) => promisifyRequest(tx.objectStore(store).get(key)) as Promise<T | undefined>;

export interface ConfigStore {
  /** Reads the config, creating (or migrating) it on first start. Rejects if storage fails. */
  load(): Promise<StoredConfig>;
  /**
   * Applies `change` atomically and returns the stored result. With `emptyOutbox`, the outbox is
   * emptied in the same transaction, and what it held is returned (it never left).
   */
  change(change: (config: StoredConfig) => StoredConfig, emptyOutbox?: boolean): Promise<{ config: StoredConfig; dropped: OutboxEntry[] }>;
}

/** The config store. `sessionId` is recorded as the first session when this start makes the id. */
export function configStore(db: Storage, sessionId: string): ConfigStore {
  const change: ConfigStore['change'] = (fn, emptyOutbox = false) =>
    db.transaction([CONFIG, OUTBOX], 'readwrite', async (tx) => {
      const old = normalize(await read(tx, CONFIG, CONFIG_KEY)) ?? firstConfig(sessionId);
      const config = fn(old);
      tx.objectStore(CONFIG).put(config, CONFIG_KEY);
      let dropped: OutboxEntry[] = [];
      if (emptyOutbox) {
        dropped = (await promisifyRequest(tx.objectStore(OUTBOX).getAll())) as OutboxEntry[];
        tx.objectStore(OUTBOX).clear();
        tx.objectStore(CONFIG).put({ count: 0, bytes: 0 }, SIZE_KEY);
      }
      return { config, dropped };
    });
  return { load: () => change((c) => c).then((r) => r.config), change };
}

/**
 * The outbox's storage. Its size (count and bytes) is kept beside the config and changed in the
 * same transactions as the entries, so every tab sees one true size without reading every entry.
 */
export const outboxStore = (db: Storage) => ({
  /** Adds entries; past `limits`, removes the oldest first. Returns what was removed. */
  add(entries: OutboxEntry[], limits: OutboxSize): Promise<OutboxEntry[]> {
    return db.transaction([CONFIG, OUTBOX], 'readwrite', async (tx) => {
      const box = tx.objectStore(OUTBOX);
      const size = await sizeOf(tx);
      for (const e of entries) {
        box.put(e, e.uuid);
        size.count++;
        size.bytes += e.bytes;
      }
      const evicted: OutboxEntry[] = [];
      if (size.count > limits.count || size.bytes > limits.bytes) {
        // Oldest first: keys are time-ordered UUIDs.
        await new Promise<void>((resolve, reject) => {
          const cursor = box.openCursor();
          cursor.onerror = () => reject(cursor.error);
          cursor.onsuccess = () => {
            const c = cursor.result;
            if (!c || (size.count <= limits.count && size.bytes <= limits.bytes)) return resolve();
            const e = c.value as OutboxEntry;
            evicted.push(e);
            size.count--;
            size.bytes -= e.bytes;
            c.delete();
            c.continue();
          };
        });
      }
      tx.objectStore(CONFIG).put(size, SIZE_KEY);
      return evicted;
    });
  },

  /**
   * Every waiting entry for this project and host, oldest first, with the stored config read in
   * the same transaction: the id and choice they are judged by are the ones stored with them.
   */
  list(projectKey: string, apiHost: string): Promise<{ entries: OutboxEntry[]; config: StoredConfig | undefined }> {
    return db.transaction([CONFIG, OUTBOX], 'readonly', async (tx) => {
      const [all, config] = await Promise.all([promisifyRequest(tx.objectStore(OUTBOX).getAll()) as Promise<OutboxEntry[]>, read(tx, CONFIG, CONFIG_KEY)]);
      return { entries: all.filter((e) => e.projectKey === projectKey && e.apiHost === apiHost), config: normalize(config) };
    });
  },

  /** Removes entries (delivered, or dropped for good). Entries already gone are skipped. */
  remove(uuids: string[]): Promise<void> {
    return db.transaction([CONFIG, OUTBOX], 'readwrite', async (tx) => {
      const box = tx.objectStore(OUTBOX);
      const size = await sizeOf(tx);
      const found = await Promise.all(uuids.map((u) => promisifyRequest(box.get(u)) as Promise<OutboxEntry | undefined>));
      for (const e of found) {
        if (!e) continue;
        box.delete(e.uuid);
        size.count--;
        size.bytes -= e.bytes;
      }
      tx.objectStore(CONFIG).put(size, SIZE_KEY);
    });
  },

  size(): Promise<OutboxSize> {
    return db.transaction([CONFIG, OUTBOX], 'readonly', sizeOf);
  },
});


/** The stored size, recounted from the entries if it is missing or impossible (never trusted blindly). */
async function sizeOf(tx: IDBTransaction): Promise<OutboxSize> {
  const s = await read<OutboxSize>(tx, CONFIG, SIZE_KEY);
  if (isRecord(s) && Number.isSafeInteger(s.count) && s.count >= 0 && Number.isFinite(s.bytes) && s.bytes >= 0) return { count: s.count, bytes: s.bytes };
  const all = (await promisifyRequest(tx.objectStore(OUTBOX).getAll())) as OutboxEntry[];
  return { count: all.length, bytes: all.reduce((n, e) => n + (Number(e.bytes) || 0), 0) };
}

/** A fresh id, for first starts and for clear(). */
export function newAnalyticsId(): string {
  return nanoid();
}

/** Accepts what we stored before; repairs what it can (a lost id is remade, the choice kept). */
function normalize(value: unknown): StoredConfig | undefined {
  if (!isRecord(value)) return undefined;
  const choice = value.choice === 'enabled' || value.choice === 'disabled' ? value.choice : 'unset';
  return {
    analyticsId: typeof value.analyticsId === 'string' && value.analyticsId ? value.analyticsId : newAnalyticsId(),
    choice,
    ...(typeof value.choiceTime === 'string' ? { choiceTime: value.choiceTime } : {}),
    metadata: plainMetadata(value.metadata),
    ...(typeof value.firstSessionId === 'string' ? { firstSessionId: value.firstSessionId } : {}),
  };
}

/** First start: adopt the old web build's id and metadata when present (not a first run then), else a new id. */
function firstConfig(sessionId: string): StoredConfig {
  const legacy = readLegacy();
  if (legacy) return { analyticsId: legacy.analyticsId, choice: 'unset', metadata: legacy.metadata };
  return { analyticsId: newAnalyticsId(), choice: 'unset', metadata: {}, firstSessionId: sessionId };
}

function readLegacy(): { analyticsId: string; metadata: Metadata } | undefined {
  try {
    const parsed: unknown = JSON.parse(globalThis.localStorage?.getItem(LEGACY_KEY) ?? 'null');
    if (!isRecord(parsed) || typeof parsed.analytics_id !== 'string' || !parsed.analytics_id) return undefined;
    return { analyticsId: parsed.analytics_id, metadata: plainMetadata(parsed.metadata) };
  } catch {
    return undefined; // unreadable or sandboxed localStorage: nothing to adopt
  }
}

/** Forgets the old build's copy of the id too, so clear() really forgets it. */
export function forgetLegacy(): void {
  try {
    globalThis.localStorage?.removeItem(LEGACY_KEY);
  } catch {
    // sandboxed localStorage: there is nothing we could have adopted either
  }
}

/** Metadata keys, at most; longer keys and strings are dropped (metadata rides on every $identify). */
const MAX_METADATA_KEYS = 64;
const MAX_METADATA_LENGTH = 1024;

/** Metadata as plain values; the native `{"String": "x"}` shape is unwrapped; anything else is dropped. */
export function plainMetadata(value: unknown): Metadata {
  if (!isRecord(value)) return {};
  const kept: [string, MetadataValue][] = [];
  for (const [k, v] of Object.entries(value)) {
    const plain = unwrapNative(v)?.value ?? v;
    const ok = typeof plain === 'string' ? plain.length <= MAX_METADATA_LENGTH : typeof plain === 'boolean' || (typeof plain === 'number' && Number.isFinite(plain));
    if (ok && k.length <= 200 && k !== '__proto__' && kept.length < MAX_METADATA_KEYS) kept.push([k, plain as MetadataValue]);
  }
  return Object.fromEntries(kept); // own keys only, even one named "__proto__"
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`IndexedDB did not answer within ${ms} ms`)), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}
