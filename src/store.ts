// The shell's storage: IndexedDB, in a database of our own (never posthog-js's storage):
//   config  the anonymous id, the user's choice, opt-in metadata; the outbox's size; the
//           delivering tab's lease (drain-lock.ts) and in-flight marks
//   outbox  events the consent gate accepted that have not been delivered yet
// It carries out the core's storage ops (decide/types.ts), each in one transaction, and reports
// what it found; the rules it applies inside them (applyChange, the bounds) are the core's.
// An opt-out or clear() empties the outbox in the very transaction that stores it, and an add
// is refused while the stored choice is off or names another id: the outbox never holds an
// event the stored config forbids.
import { promisifyRequest } from 'idb-keyval';
import { nanoid } from 'nanoid';
import { applyChange, OUTBOX_LIMITS, plainMetadata, type OutboxEntry, type OutboxSize, type StoredConfig } from './decide/config.js';
import type { StorageOp, StorageResult } from './decide/types.js';
import { isRecord, safeString } from './plain.js';

export type { Metadata, MetadataValue, OutboxEntry, OutboxSize, StoredConfig } from './decide/config.js';
export { plainMetadata };

export const DB_NAME = 'rerun-analytics';
export const DB_VERSION = 2; // 1: config only (first versions); 2: + outbox
export const CONFIG = 'config';
export const OUTBOX = 'outbox';
const CONFIG_KEY = 'config';
const SIZE_KEY = 'outbox-size';
/** A delivering tab marks what it is about to send (`flight:<session>`): no other tab evicts it. */
const MARK = 'flight:';
const MARK_MS = 45_000;
/** The old web build's localStorage key: its id is adopted so existing users keep it. */
export const LEGACY_KEY = 'rerun_config';
/** IndexedDB can hang (a blocked upgrade, a wedged profile); past this we treat it as failed. */
const TIMEOUT_MS = 3000;
const MAX_BATCH = 500;

export interface Storage {
  /** Runs `work` in one transaction over `stores`; resolves with its result once the transaction commits. */
  transaction<T>(stores: string[], mode: IDBTransactionMode, work: (tx: IDBTransaction) => T | Promise<T>): Promise<T>;
  /** Closes the connection (shutdown). */
  close(): void;
}

/**
 * Our database, opened lazily once per instance; a failed or closed connection (another tab
 * upgrading, site data cleared) is opened afresh on the next use. A newer build's higher version
 * is opened as it is, if it still has our stores. Every use is bounded by TIMEOUT_MS.
 */
export function openStorage(lost: () => void = () => undefined): Storage {
  let dbp: Promise<IDBDatabase> | undefined;
  let closed = false;
  const database = (): Promise<IDBDatabase> => {
    if (closed) return Promise.reject(new Error('storage closed (shut down)'));
    const opening = (dbp ??= open(DB_VERSION).catch((err: unknown) => (err instanceof DOMException && err.name === 'VersionError' ? open(undefined) : Promise.reject(err))));
    opening.then(
      (db) => {
        if (closed) return db.close();
        // Another tab upgrading to a newer version must not be blocked by us; nor a closed connection reused.
        db.onversionchange = () => (db.close(), dbp === opening && (dbp = undefined), lost());
        db.onclose = () => (dbp === opening && (dbp = undefined), lost()); // closed by the browser: site data cleared, or a disk error
      },
      () => dbp === opening && (dbp = undefined),
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
          tx.commit?.(); // now, not at the end of the task: a closing page may not get another
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

function open(version: number | undefined): Promise<IDBDatabase> {
  const request = version === undefined ? indexedDB.open(DB_NAME) : indexedDB.open(DB_NAME, version); // throws where IndexedDB does not exist
  request.onupgradeneeded = () => {
    const db = request.result;
    if (!db.objectStoreNames.contains(CONFIG)) db.createObjectStore(CONFIG);
    if (!db.objectStoreNames.contains(OUTBOX)) db.createObjectStore(OUTBOX);
  };
  return promisifyRequest(request).then((db) => {
    if (db.objectStoreNames.contains(CONFIG) && db.objectStoreNames.contains(OUTBOX)) return db;
    db.close();
    throw new Error(`database "${DB_NAME}" version ${db.version} has no stores of ours`);
  });
}

const read = <T>(tx: IDBTransaction, store: string, key: IDBValidKey) => promisifyRequest(tx.objectStore(store).get(key)) as Promise<T | undefined>;

export interface Where {
  projectKey: string;
  apiHost: string;
  sessionId: string;
  /** The wall clock, for marks (never trusted from the future). */
  wall(): number;
}

/** Carries out one storage op of the core; never rejects (a failure is `ok: false`). */
export function runStorageOp(db: Storage, where: Where, op: StorageOp): Promise<StorageResult> {
  const work = async (tx: IDBTransaction): Promise<StorageResult> => {
    if (op.op === 'add' && op.closing) return putNow(tx, op.entries);
    const { config, created } = await configOf(tx, where.sessionId);
    if (op.op === 'read') return { ok: true, config, created, othersFlying: (await marked(tx, where.wall(), where.sessionId)).size > 0 };
    if (op.op === 'change') return change(tx, where, config, created, op);
    if (op.op === 'add') return add(tx, where, config, created, op.entries, op.again === true);
    if (op.op === 'list') return list(tx, where, config, created);
    await remove(tx, where, op.uuids, op.unmark);
    return { ok: true, config, created };
  };
  return db.transaction([CONFIG, OUTBOX], 'readwrite', work).catch((err: unknown) => ({ ok: false, error: safeString(err instanceof Error ? err.message : err).slice(0, 200) }));
}

/** The stored config; created (or migrated) if missing: a first start, or site data cleared. */
async function configOf(tx: IDBTransaction, sessionId: string): Promise<{ config: StoredConfig; created: boolean }> {
  const raw = await read<Record<string, unknown>>(tx, CONFIG, CONFIG_KEY);
  const stored = normalize(raw);
  if (stored && stored.analyticsId !== raw?.analyticsId) tx.objectStore(CONFIG).put(stored, CONFIG_KEY); // an id made now is kept, once
  if (stored) return { config: stored, created: false };
  const config = firstConfig(sessionId);
  tx.objectStore(CONFIG).put(config, CONFIG_KEY);
  return { config, created: true };
}

async function change(tx: IDBTransaction, where: Where, old: StoredConfig, created: boolean, op: StorageOp & { op: 'change' }): Promise<StorageResult> {
  const config = applyChange(old, op.change);
  tx.objectStore(CONFIG).put(config, CONFIG_KEY);
  if (!op.empty) return { ok: true, config, created };
  const all = (await promisifyRequest(tx.objectStore(OUTBOX).getAll())) as OutboxEntry[];
  const flying = await marked(tx, where.wall());
  const others = await marked(tx, where.wall(), where.sessionId);
  tx.objectStore(OUTBOX).clear();
  tx.objectStore(CONFIG).put({ count: 0, bytes: 0 }, SIZE_KEY);
  return { ok: true, config, created, othersFlying: others.size > 0, dropped: all.filter((e) => !flying.has(e.uuid)) }; // those in flight are their sender's to report
}

/** Adds entries recorded under the stored id while the stored choice is not off; past the bounds, the oldest not in flight go. */
/** A closing page's write: every put issued in this task (no read to wait for); the size is recounted by the next op. */
function putNow(tx: IDBTransaction, entries: OutboxEntry[]): StorageResult {
  const box = tx.objectStore(OUTBOX);
  for (const e of entries) box.put(e, e.uuid);
  tx.objectStore(CONFIG).delete(SIZE_KEY);
  return { ok: true };
}

async function add(tx: IDBTransaction, where: Where, config: StoredConfig, created: boolean, entries: OutboxEntry[], again: boolean): Promise<StorageResult> {
  const refused = entries.filter((e) => config.choice === 'disabled' || e.distinctId !== config.analyticsId || (e.cut ?? 0) !== (config.cut ?? 0)).map((e) => e.uuid);
  const box = tx.objectStore(OUTBOX);
  const size = await sizeOf(tx);
  const refusedSet = new Set(refused);
  // Written once, normally; a tab back from memory mode writes again what may be there already.
  const there = again ? new Set((await promisifyRequest(box.getAllKeys())) as string[]) : new Set<string>();
  for (const e of entries) {
    if (refusedSet.has(e.uuid)) continue;
    box.put(e, e.uuid);
    if (!there.has(e.uuid)) (size.count++, (size.bytes += e.bytes));
  }
  const dropped = size.count > OUTBOX_LIMITS.count || size.bytes > OUTBOX_LIMITS.bytes ? await evict(tx, size, await marked(tx, where.wall())) : [];
  tx.objectStore(CONFIG).put(size, SIZE_KEY);
  return { ok: true, config, created, dropped, ...(refused.length ? { refused } : {}) };
}

/** Oldest first (keys are time-ordered UUIDs), skipping what a tab has in flight. */
function evict(tx: IDBTransaction, size: OutboxSize, flying: Set<string>): Promise<OutboxEntry[]> {
  const evicted: OutboxEntry[] = [];
  return new Promise((resolve, reject) => {
    const cursor = tx.objectStore(OUTBOX).openCursor();
    cursor.onerror = () => reject(cursor.error);
    cursor.onsuccess = () => {
      const c = cursor.result;
      if (!c || (size.count <= OUTBOX_LIMITS.count && size.bytes <= OUTBOX_LIMITS.bytes)) return resolve(evicted);
      const e = c.value as OutboxEntry;
      if (!flying.has(e.uuid)) {
        evicted.push(e);
        size.count--;
        size.bytes -= e.bytes;
        c.delete();
      }
      c.continue();
    };
  });
}

/** Every waiting entry of this project and host, oldest first; the oldest are marked as about to be sent by this tab. */
async function list(tx: IDBTransaction, where: Where, config: StoredConfig, created: boolean): Promise<StorageResult> {
  const all = (await promisifyRequest(tx.objectStore(OUTBOX).getAll())) as OutboxEntry[];
  const entries = all.filter((e) => e.projectKey === where.projectKey && e.apiHost === where.apiHost);
  if (entries.length) tx.objectStore(CONFIG).put({ uuids: entries.slice(0, MAX_BATCH).map((e) => e.uuid), until: where.wall() + MARK_MS }, MARK + where.sessionId);
  return { ok: true, config, created, entries };
}

/** Removes entries (delivered, or dropped for good; those already gone are skipped) and this tab's mark. */
async function remove(tx: IDBTransaction, where: Where, uuids: string[], unmark: boolean): Promise<void> {
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
  if (unmark) tx.objectStore(CONFIG).delete(MARK + where.sessionId);
}

/** What tabs have in flight: marks that have not expired — and are not from the future (a clock that stepped). */
async function marked(tx: IDBTransaction, wall: number, except?: string): Promise<Set<string>> {
  const range = IDBKeyRange.bound(MARK, `${MARK}\uffff`);
  const [keys, marks] = (await Promise.all([promisifyRequest(tx.objectStore(CONFIG).getAllKeys(range)), promisifyRequest(tx.objectStore(CONFIG).getAll(range))])) as [IDBValidKey[], { uuids?: unknown; until?: unknown }[]];
  const uuids = new Set<string>();
  for (const [i, m] of marks.entries()) {
    if (keys[i] === MARK + except) continue;
    const left = Number(m?.until) - wall;
    if (left > 0 && left <= MARK_MS && Array.isArray(m.uuids)) for (const u of m.uuids) uuids.add(String(u));
  }
  return uuids;
}

/** The outbox's size (count and bytes), for config(). */
export const outboxSize = (db: Storage): Promise<OutboxSize> => db.transaction([CONFIG, OUTBOX], 'readonly', sizeOf);

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
    ...(Number.isSafeInteger(value.cut) ? { cut: value.cut as number } : {}),
    ...(Number.isFinite(value.cutAt) ? { cutAt: value.cutAt as number } : {}),
  };
}

/** First start: adopt the old web build's id and metadata when present (not a first run then), else a new id. */
function firstConfig(sessionId: string): StoredConfig {
  const legacy = readLegacy();
  if (legacy) return { analyticsId: legacy.analyticsId, choice: 'unset', metadata: legacy.metadata };
  return { analyticsId: newAnalyticsId(), choice: 'unset', metadata: {}, firstSessionId: sessionId };
}

function readLegacy(): { analyticsId: string; metadata: StoredConfig['metadata'] } | undefined {
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

/**
 * Rejects once storage has not answered for `ms` of time this page could run: a main thread
 * blocked for a while (a WASM compile at startup) is not counted against storage.
 */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let waited = 0;
    let last = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const check = () => {
      const now = performance.now();
      waited += Math.min(now - last, 2 * CHECK_MS);
      last = now;
      if (waited >= ms) reject(new Error(`IndexedDB did not answer within ${ms} ms`));
      else timer = setTimeout(check, CHECK_MS);
    };
    timer = setTimeout(check, CHECK_MS);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}
const CHECK_MS = 250;
