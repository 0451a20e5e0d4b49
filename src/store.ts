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
export const DB_VERSION = 3; // 1: config only (first versions); 2: + outbox (a record per event); 3: its UUID index (a record per write)
export const CONFIG = 'config';
export const OUTBOX = 'outbox';
const CONFIG_KEY = 'config';
const SIZE_KEY = 'outbox-size';
/** The outbox's index of every record's UUIDs (multiEntry): which records hold an entry. */
const BY_UUID = 'uuid';
/** A delivering tab marks what it is about to send (`flight:<session>`): no other tab evicts it. */
const MARK = 'flight:';
const MARK_MS = 45_000;
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
    const box = db.objectStoreNames.contains(OUTBOX) ? request.transaction!.objectStore(OUTBOX) : db.createObjectStore(OUTBOX);
    if (!box.indexNames.contains(BY_UUID)) box.createIndex(BY_UUID, 'uuid', { multiEntry: true });
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
    if (op.op === 'add') return add(tx, where, config, created, op.entries);
    if (op.op === 'list') return list(tx, where, config, created, op.limit);
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
  const all = await stored(tx);
  const flying = await marked(tx, where.wall());
  const others = await marked(tx, where.wall(), where.sessionId);
  tx.objectStore(OUTBOX).clear();
  tx.objectStore(CONFIG).put({ count: 0, bytes: 0 }, SIZE_KEY);
  return { ok: true, config, created, othersFlying: others.size > 0, dropped: all.filter((e) => !flying.has(e.uuid)) }; // those in flight are their sender's to report
}

/**
 * A closing page's write: one put issued in this task (no read to wait for). Whoever lists the
 * entries judges them (id, cut and choice included); the size is recounted by the next op.
 */
function putNow(tx: IDBTransaction, entries: OutboxEntry[]): StorageResult {
  putBatch(tx, entries);
  tx.objectStore(CONFIG).delete(SIZE_KEY);
  return { ok: true };
}

/** Adds entries recorded under the stored id while the stored choice is not off; past the bounds, the oldest not in flight go. */
async function add(tx: IDBTransaction, where: Where, config: StoredConfig, created: boolean, entries: OutboxEntry[]): Promise<StorageResult> {
  const refused = entries.filter((e) => config.choice === 'disabled' || e.distinctId !== config.analyticsId || (e.cut ?? 0) !== (config.cut ?? 0)).map((e) => e.uuid);
  const size = await sizeOf(tx);
  // Written once: a write may come again (a tab back from memory mode, a page back from the
  // back/forward cache after its closing write put the same entries), and is then skipped.
  const skip = new Set([...refused, ...(await storedOf(tx, entries))]);
  const fresh = entries.filter((e) => !skip.has(e.uuid));
  putBatch(tx, fresh);
  for (const e of fresh) (size.count++, (size.bytes += e.bytes));
  const dropped = over(size) ? await evict(tx, size, await marked(tx, where.wall())) : [];
  tx.objectStore(CONFIG).put(size, SIZE_KEY);
  return { ok: true, config, created, dropped, ...(refused.length ? { refused } : {}) };
}

/** Oldest first (records are keyed by their oldest time-ordered UUID), skipping what a tab has in flight. */
async function evict(tx: IDBTransaction, size: OutboxSize, flying: Set<string>): Promise<OutboxEntry[]> {
  const evicted = new Map<string, OutboxEntry>();
  await walk(tx, (value) => {
    for (const e of entriesOf(value)) {
      if (!over(size) || flying.has(e.uuid) || evicted.has(e.uuid)) continue;
      evicted.set(e.uuid, e);
      size.count--;
      size.bytes -= e.bytes;
    }
    return over(size);
  });
  await dropFromRecords(tx, new Set(evicted.keys()));
  return [...evicted.values()];
}

const over = (size: OutboxSize) => size.count > OUTBOX_LIMITS.count || size.bytes > OUTBOX_LIMITS.bytes;

/** Visits the outbox's records oldest first, one request each, while `visit` asks for more; true if it stopped before the end. */
function walk(tx: IDBTransaction, visit: (value: unknown) => boolean): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const cursor = tx.objectStore(OUTBOX).openCursor();
    cursor.onerror = () => reject(cursor.error);
    cursor.onsuccess = () => {
      const c = cursor.result;
      if (!c) resolve(false);
      else if (!visit(c.value)) resolve(true);
      else c.continue();
    };
  });
}

/**
 * The oldest `limit` waiting entries of this project and host, marked as about to be sent by this
 * tab. Records are read oldest first, a record per request, until there are enough: a list clones
 * out of IndexedDB what one request carries, not the whole outbox.
 */
async function list(tx: IDBTransaction, where: Where, config: StoredConfig, created: boolean, limit: number): Promise<StorageResult> {
  const found = new Map<string, OutboxEntry>();
  const more = await walk(tx, (value) => {
    if (found.size >= limit) return false; // a record not read: more wait
    for (const e of entriesOf(value)) if (e.projectKey === where.projectKey && e.apiHost === where.apiHost) found.set(e.uuid, e);
    return true;
  });
  const sorted = [...found.values()].sort(byUuid);
  const entries = sorted.slice(0, limit);
  if (entries.length) tx.objectStore(CONFIG).put({ uuids: entries.map((e) => e.uuid), until: where.wall() + MARK_MS }, MARK + where.sessionId);
  return { ok: true, config, created, entries, more: more || sorted.length > limit };
}

/** The records that may hold any of `uuids` (by the index over their range), with their keys. */
async function recordsOf(tx: IDBTransaction, uuids: string[]): Promise<{ k: IDBValidKey; value: unknown }[]> {
  if (!uuids.length) return [];
  const box = tx.objectStore(OUTBOX);
  const sorted = [...uuids].sort();
  const range = IDBKeyRange.bound(sorted[0], sorted.at(-1));
  const keys = new Set((await promisifyRequest(box.indexNames.contains(BY_UUID) ? box.index(BY_UUID).getAllKeys(range) : box.getAllKeys())) as IDBValidKey[]); // a newer build's database may lack it
  return Promise.all([...keys].map((k) => promisifyRequest(box.get(k)).then((value: unknown) => ({ k, value }))));
}

/** Which of `entries` are stored already (usually none: one request finds no record in their range). */
async function storedOf(tx: IDBTransaction, entries: OutboxEntry[]): Promise<string[]> {
  const wanted = new Set(entries.map((e) => e.uuid));
  const records = await recordsOf(tx, [...wanted]);
  return records.flatMap(({ value }) => entriesOf(value).map((e) => e.uuid)).filter((u) => wanted.has(u));
}

/** Removes entries (delivered, or dropped for good; those already gone are skipped) and this tab's mark. */
async function remove(tx: IDBTransaction, where: Where, uuids: string[], unmark: boolean): Promise<void> {
  if (unmark) tx.objectStore(CONFIG).delete(MARK + where.sessionId);
  if (!uuids.length) return;
  const size = await sizeOf(tx);
  for (const e of await dropFromRecords(tx, new Set(uuids))) size.count--, (size.bytes -= e.bytes);
  tx.objectStore(CONFIG).put(size, SIZE_KEY);
}

/** Takes `gone` out of every record holding them (a few records, not an op per entry); returns each removed entry once. */
async function dropFromRecords(tx: IDBTransaction, gone: Set<string>): Promise<OutboxEntry[]> {
  const box = tx.objectStore(OUTBOX);
  const removed = new Map<string, OutboxEntry>(); // once each, should a closing page have written one twice
  for (const { k, value } of await recordsOf(tx, [...gone])) {
    const all = entriesOf(value);
    const kept: OutboxEntry[] = [];
    for (const e of all) gone.has(e.uuid) ? removed.set(e.uuid, e) : kept.push(e);
    if (kept.length === all.length) continue;
    if (kept.length) box.put(batchOf(kept), k);
    else box.delete(k);
  }
  return [...removed.values()];
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
  const all = await stored(tx);
  return { count: all.length, bytes: all.reduce((n, e) => n + (Number(e.bytes) || 0), 0) };
}

/** Every stored entry, oldest first, each once. */
async function stored(tx: IDBTransaction): Promise<OutboxEntry[]> {
  const seen = new Set<string>();
  const all: OutboxEntry[] = [];
  for (const value of (await promisifyRequest(tx.objectStore(OUTBOX).getAll())) as unknown[]) for (const e of entriesOf(value)) if (!seen.has(e.uuid)) seen.add(e.uuid), all.push(e);
  return all.sort(byUuid);
}

const byUuid = (a: OutboxEntry, b: OutboxEntry) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0);

/**
 * The outbox's records: one per write, `{ uuid: [its entries' UUIDs], entries }`, keyed by its
 * oldest UUID (see putBatch). A put clones its value on the main thread at a cost per byte, and every request
 * costs a task's worth of overhead besides: a record per write, not per event, is what keeps
 * storage within the frame budget. (A version 2 record, one entry, is read too.)
 */
const batchOf = (entries: OutboxEntry[]) => ({ uuid: entries.map((e) => e.uuid), entries });

/**
 * A write's record, keyed by its oldest UUID (the store reads oldest first), its newest and its
 * count: the same entries written again (a closing page repeating the write it had under way)
 * replace their record, and no other write ever does.
 */
function putBatch(tx: IDBTransaction, entries: OutboxEntry[]): void {
  if (!entries.length) return;
  const sorted = [...entries].sort(byUuid);
  tx.objectStore(OUTBOX).put(batchOf(sorted), `${sorted[0]!.uuid} ${sorted.at(-1)!.uuid} ${sorted.length}`);
}

function entriesOf(value: unknown): OutboxEntry[] {
  const all = isRecord(value) && Array.isArray(value.entries) ? value.entries : [value];
  return all.filter((e): e is OutboxEntry => isRecord(e) && typeof e.uuid === 'string');
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
