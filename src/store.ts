// The shell's storage: the storage contract (core/contract.ts) kept on IndexedDB, in a database of
// our own (never posthog-js's storage), and on localStorage for the journal (what must survive a
// closing page, or a disk that refuses writes). Each storage op of the core runs in one
// transaction and reports what it found; the rules it applies (the cut, the add rule, the bounds)
// are the contract's.
import { promisifyRequest } from 'idb-keyval';
import { nanoid } from 'nanoid';
import {
  ahead,
  applyChange,
  applyJournaled,
  CONFIG,
  CONFIG_KEY,
  DB_NAME,
  DB_VERSION,
  EVENTS,
  JOURNAL_CHANGE,
  JOURNAL_EVENTS,
  LEGACY_OUTBOX,
  MARK,
  MARK_MS,
  NOT_BEFORE,
  NOT_BEFORE_MAX_MS,
  over,
  refuses,
  SIZE_KEY,
  type ConfigChange,
  type OutboxEntry,
  type StorageOp,
  type StorageResult,
  type StoredConfig,
} from './core/contract.js';
import { plainMetadata } from './metadata.js';
import { isRecord, safeString } from './plain.js';

export type { Metadata, MetadataValue, OutboxEntry, StoredConfig } from './core/contract.js';
export { CONFIG, DB_NAME, EVENTS, LEGACY_OUTBOX } from './core/contract.js';
export { plainMetadata };

/** The outbox's index of every record's uuids (multiEntry): which records hold an entry. */
const BY_UUID = 'uuid';
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

/** Who runs an op: a page load, for one endpoint; and the wall clock (marks are never trusted from the future). */
export interface Where {
  projectKey: string;
  apiHost: string;
  sessionId: string;
  wall(): number;
}

/**
 * Our database, opened lazily once per instance; a failed or closed connection (a newer build
 * upgrading, site data cleared) is opened afresh on the next use. A newer build's higher version
 * is opened as it is, if it still has our stores. Every use is bounded by TIMEOUT_MS.
 */
export function openStorage(lost: (upgraded: boolean) => void = () => undefined): Storage {
  let dbp: Promise<IDBDatabase> | undefined;
  let closed = false;
  const database = (): Promise<IDBDatabase> => {
    if (closed) return Promise.reject(new Error('storage closed (shut down)'));
    const opening = (dbp ??= open(DB_VERSION).catch((err: unknown) => (err instanceof DOMException && err.name === 'VersionError' ? open(undefined) : Promise.reject(err))));
    opening.then(
      (db) => {
        if (closed) return db.close();
        const gone = (upgraded: boolean) => {
          if (dbp === opening) dbp = undefined;
          lost(upgraded);
        };
        // A newer build upgrading must not be blocked by us; nor a closed connection reused.
        db.onversionchange = (e) => {
          db.close();
          gone(e.newVersion !== null); // null: the database is being deleted
        };
        db.onclose = () => gone(false); // closed by the browser: site data cleared, or a disk error
      },
      () => {
        if (dbp === opening) dbp = undefined;
      },
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
          abort(tx); // all or nothing: never half a change
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
      void dbp?.then(
        (db) => db.close(),
        () => undefined,
      );
      dbp = undefined;
    },
  };
}

function abort(tx: IDBTransaction): void {
  try {
    tx.abort();
  } catch {
    // already finished
  }
}

function open(version: number | undefined): Promise<IDBDatabase> {
  const request = version === undefined ? indexedDB.open(DB_NAME) : indexedDB.open(DB_NAME, version); // throws where IndexedDB does not exist
  request.onupgradeneeded = () => {
    const db = request.result;
    // The older builds' outbox is kept (their tabs may still be open); ours is a store of its own.
    for (const name of [CONFIG, LEGACY_OUTBOX]) if (!db.objectStoreNames.contains(name)) db.createObjectStore(name);
    if (!db.objectStoreNames.contains(EVENTS)) db.createObjectStore(EVENTS).createIndex(BY_UUID, 'uuid', { multiEntry: true });
  };
  return promisifyRequest(request).then((db) => {
    if (db.objectStoreNames.contains(CONFIG) && db.objectStoreNames.contains(EVENTS)) return db;
    db.close();
    throw new Error(`database "${DB_NAME}" version ${db.version} has no stores of ours`);
  });
}

const get = <T>(tx: IDBTransaction, store: string, key: IDBValidKey) => promisifyRequest(tx.objectStore(store).get(key)) as Promise<T | undefined>;
const STORES = [CONFIG, EVENTS, LEGACY_OUTBOX];
const errorOf = (err: unknown) => safeString(err instanceof Error ? `${err.name}: ${err.message}` : err).slice(0, 200);

/** Carries out one storage op of the core; never rejects (a failure is `ok: false`). */
export async function runStorageOp(db: Storage, where: Where, op: StorageOp): Promise<StorageResult> {
  const journaled = journaledChanges();
  try {
    const result = await db.transaction(STORES, 'readwrite', (tx) => inTransaction(tx, where, op, journaled));
    for (const key of result.journal ?? []) forget(key); // the journaled events it took in
    delete result.journal;
    if (journaled.length) await keepJournaled(db, where, journaled);
    return result;
  } catch (err) {
    if (op.op === 'change' && op.change.cutAt !== undefined) return keepChange(db, where, op, journaled, err);
    if (op.op === 'read') return readOnly(db, where, journaled, err);
    return { ok: false, error: errorOf(err) };
  }
}

type Journaled = [string, ConfigChange][];
type ChangeOp = StorageOp & { op: 'change' };
type Taken = Pick<StorageResult, 'dropped' | 'refused'> & { journal?: string[] };

async function inTransaction(tx: IDBTransaction, where: Where, op: StorageOp, journaled: Journaled): Promise<StorageResult & { journal?: string[] }> {
  const { config, created } = await configOf(tx, where.sessionId, journaled, true);
  if (op.op === 'read') return { ok: true, config, created, ...(await takeJournaled(tx, config, where)), othersFlying: (await marked(tx, where.wall(), where.sessionId)).size > 0 };
  if (op.op === 'change') return change(tx, where, config, created, op);
  if (op.op === 'add') return { ok: true, config, created, ...(await add(tx, where, config, op.entries)) };
  if (op.op === 'list') return list(tx, where, config, created, op);
  if (op.op === 'mark') {
    tx.objectStore(CONFIG).put({ uuids: op.uuids, until: where.wall() + MARK_MS }, MARK + where.sessionId);
    return { ok: true, config, created };
  }
  await remove(tx, where, op);
  return { ok: true, config, created };
}

/**
 * Journaled changes, written into the config where the disk takes them (a transaction of their
 * own: an op never fails for them), then forgotten. Each is applied once (its id is kept).
 */
async function keepJournaled(db: Storage, where: Where, journaled: Journaled): Promise<void> {
  const applied: string[] = await db
    .transaction([CONFIG], 'readwrite', async (tx) => {
      const { config } = await configOf(tx, where.sessionId, journaled, false);
      if (await get(tx, CONFIG, CONFIG_KEY)) tx.objectStore(CONFIG).put(config, CONFIG_KEY);
      return config.applied ?? [];
    })
    .catch(() => []);
  for (const [id] of journaled) if (applied.includes(id)) forget(JOURNAL_CHANGE + id);
}

/** The stored config, created (or adopted from the old web build) if missing (written when `write`); journaled changes applied over it. */
async function configOf(tx: IDBTransaction, sessionId: string, journaled: Journaled, write: boolean): Promise<{ config: StoredConfig; created: boolean }> {
  const raw = await get<Record<string, unknown>>(tx, CONFIG, CONFIG_KEY);
  let config = normalize(raw);
  const created = !config;
  config ??= firstConfig(sessionId);
  const repaired = !created && config.analyticsId !== raw?.analyticsId; // an id made now is kept, once
  if (write && (created || repaired)) tx.objectStore(CONFIG).put(config, CONFIG_KEY);
  for (const [id, change] of journaled) config = applyJournaled(config, id, change);
  return { config, created };
}

/** A change, over the config as read (journaled changes applied: written with it). */
async function change(tx: IDBTransaction, where: Where, old: StoredConfig, created: boolean, { change: ch, id }: ChangeOp): Promise<StorageResult> {
  const config = id ? applyJournaled(old, id, ch) : applyChange(old, ch);
  tx.objectStore(CONFIG).put(config, CONFIG_KEY);
  if (ch.cutAt === undefined) return { ok: true, config, created, othersFlying: (await marked(tx, where.wall(), where.sessionId)).size > 0 };
  return { ok: true, config, created, ...(await empty(tx, where)) };
}

/** Empties the outbox (ours and the older builds'): what it held, which of it other tabs had marked. Deletes only. */
async function empty(tx: IDBTransaction, where: Where): Promise<Pick<StorageResult, 'dropped' | 'flying' | 'othersFlying'>> {
  const dropped = [...(await stored(tx, EVENTS)), ...(await stored(tx, LEGACY_OUTBOX))];
  const others = await marked(tx, where.wall(), where.sessionId);
  tx.objectStore(EVENTS).clear();
  tx.objectStore(LEGACY_OUTBOX).clear();
  tx.objectStore(CONFIG).delete(SIZE_KEY); // recounted: zero
  return { dropped, flying: dropped.filter((e) => others.has(e.uuid)).map((e) => e.uuid), othersFlying: others.size > 0 };
}

/**
 * A change with a cut that IndexedDB refused (a full disk refuses every put): kept in the journal,
 * and the outbox emptied by a transaction that only deletes. Every later read applies it.
 */
async function keepChange(db: Storage, where: Where, { change: ch, id = nanoid() }: ChangeOp, journaled: Journaled, err: unknown): Promise<StorageResult> {
  if (!journal(JOURNAL_CHANGE + id, ch)) return { ok: false, error: errorOf(err) };
  try {
    return await db.transaction(STORES, 'readwrite', async (tx) => {
      if (!normalize(await get(tx, CONFIG, CONFIG_KEY))) throw err; // no config yet: the first read that can write applies it
      const { config } = await configOf(tx, where.sessionId, journaled, false);
      return { ok: true, config: applyJournaled(config, id, ch), created: false, journaled: true, ...(await empty(tx, where)) };
    });
  } catch (again) {
    // The journal keeps it (every read applies it), but the outbox could not be emptied: when unsure, say it failed.
    return { ok: false, error: errorOf(again) };
  }
}

/** A read whose transaction failed (a full disk refuses the config's put): the config as it is, journaled changes over it. */
async function readOnly(db: Storage, where: Where, journaled: Journaled, err: unknown): Promise<StorageResult> {
  try {
    return await db.transaction([CONFIG], 'readonly', async (tx) => {
      const raw = await get(tx, CONFIG, CONFIG_KEY);
      if (!normalize(raw)) throw err; // no config to read: the failure stands
      const { config } = await configOf(tx, where.sessionId, journaled, false);
      return { ok: true, config, created: false, othersFlying: (await marked(tx, where.wall(), where.sessionId)).size > 0 };
    });
  } catch {
    return { ok: false, error: errorOf(err) };
  }
}

/** Entries under the add rule, skipping what is stored already; past the bounds, the oldest not marked go. */
async function add(tx: IDBTransaction, where: Where, config: StoredConfig, entries: OutboxEntry[]): Promise<Taken> {
  const refused = entries.filter((e) => refuses(config, e));
  const kept = entries.filter((e) => !refused.includes(e));
  // Written once: a write may come again (a page back from the back/forward cache, a journal taken in).
  const seen = new Set(await storedOf(tx, kept));
  const fresh = kept.filter((e) => !seen.has(e.uuid) && Boolean(seen.add(e.uuid)));
  const size = await sizeOf(tx);
  putBatch(tx, fresh);
  for (const e of fresh) {
    size.count++;
    size.bytes += e.bytes;
  }
  const dropped = over(size) ? await evict(tx, size, await marked(tx, where.wall())) : [];
  if (fresh.length || dropped.length) tx.objectStore(CONFIG).put(size, SIZE_KEY); // nothing else written: nothing to fail on a full disk
  return { dropped, refused };
}

/** The oldest first, skipping what a tab has marked, until within the bounds (past them, which is rare: everything is read). */
async function evict(tx: IDBTransaction, size: { count: number; bytes: number }, flying: Set<string>): Promise<OutboxEntry[]> {
  const evicted: OutboxEntry[] = [];
  for (const e of await stored(tx, EVENTS)) {
    if (!over(size)) break;
    if (flying.has(e.uuid)) continue;
    evicted.push(e);
    size.count--;
    size.bytes -= e.bytes;
  }
  await dropFromRecords(tx, EVENTS, new Set(evicted.map((e) => e.uuid)));
  return evicted;
}

/** Visits a store's records oldest first, one request each, while `visit` asks for more; true if it stopped before the end. */
function walk(tx: IDBTransaction, store: string, visit: (value: unknown, key: IDBValidKey) => boolean): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const cursor = tx.objectStore(store).openCursor();
    cursor.onerror = () => reject(cursor.error);
    cursor.onsuccess = () => {
      const c = cursor.result;
      if (!c) resolve(false);
      else if (!visit(c.value, c.primaryKey)) resolve(true);
      else c.continue();
    };
  });
}

/**
 * The oldest `limit` entries of this endpoint (marked as this tab's, with `mark`). Records are
 * read oldest first, a record per request, until there are enough: a list clones out of IndexedDB
 * what one request carries, not the whole outbox. Journaled events and an older build's entries
 * are taken in first.
 */
async function list(tx: IDBTransaction, where: Where, config: StoredConfig, created: boolean, op: StorageOp & { op: 'list' }): Promise<StorageResult & { journal?: string[] }> {
  const journaled = await takeJournaled(tx, config, where);
  const older = await takeOlder(tx, config, where);
  const found = new Map<string, OutboxEntry>();
  // Records come by their oldest entry; once `limit` are found, a record whose oldest is newer than
  // all of them holds none of the oldest `limit` (nor do those after it): more wait.
  const more = await walk(tx, EVENTS, (value, key) => {
    if (found.size >= op.limit && String(key).split(' ')[0]! > nth(found, op.limit)) return false;
    for (const e of entriesOf(value)) if (e.projectKey === where.projectKey && e.apiHost === where.apiHost) found.set(e.uuid, e);
    return true;
  });
  const sorted = [...found.values()].sort(byUuid);
  const entries = sorted.slice(0, op.limit);
  await forgetExpired(tx, where.wall());
  if (op.mark && entries.length) tx.objectStore(CONFIG).put({ uuids: entries.map((e) => e.uuid), until: where.wall() + MARK_MS }, MARK + where.sessionId);
  const wait = await get<{ until?: unknown; by?: unknown }>(tx, CONFIG, NOT_BEFORE + endpoint(where));
  const notBefore = wait?.by !== where.sessionId ? Number(wait?.until) : undefined; // its own wait, the tab knows (and may have ended: back online)
  return {
    ok: true,
    config,
    created,
    entries,
    more: more || sorted.length > op.limit,
    dropped: [...(journaled.dropped ?? []), ...(older.dropped ?? [])],
    refused: [...(journaled.refused ?? []), ...(older.refused ?? [])],
    ...(journaled.journal ? { journal: journaled.journal } : {}),
    ...(notBefore !== undefined && ahead(notBefore, where.wall(), NOT_BEFORE_MAX_MS) ? { notBefore } : {}),
  };
}

const endpoint = (where: Where) => `${where.apiHost} ${where.projectKey}`;
/** The `n`-th smallest uuid found. */
const nth = (found: Map<string, OutboxEntry>, n: number) => [...found.keys()].sort()[n - 1]!;

/** Every page's journaled events, into the outbox by the add rule; their keys are forgotten once this commits. */
async function takeJournaled(tx: IDBTransaction, config: StoredConfig, where: Where): Promise<Taken> {
  const keys = journalKeys(JOURNAL_EVENTS);
  if (!keys.length) return {};
  const entries = keys.flatMap((key) => {
    const value = readJournal(key);
    return Array.isArray(value) ? value.filter((e): e is OutboxEntry => isRecord(e) && typeof e.uuid === 'string') : [];
  });
  return { ...(await add(tx, where, config, entries)), journal: keys };
}

/** An older build's outbox (versions 2 and 3), but what its tabs have marked: into ours, by the add rule (once: a deploy's worth). */
async function takeOlder(tx: IDBTransaction, config: StoredConfig, where: Where): Promise<Taken> {
  const flying = await marked(tx, where.wall());
  const taken = new Map<string, OutboxEntry>();
  const records: [IDBValidKey, OutboxEntry[], OutboxEntry[]][] = [];
  await walk(tx, LEGACY_OUTBOX, (value, key) => {
    const all = entriesOf(value);
    const take = all.filter((e) => !flying.has(e.uuid));
    if (take.length) records.push([key, all, take]);
    for (const e of take) taken.set(e.uuid, e);
    return true;
  });
  if (!taken.size) return {};
  const box = tx.objectStore(LEGACY_OUTBOX);
  for (const [key, all, take] of records) {
    const left = all.filter((e) => !take.includes(e));
    if (left.length) box.put(batchOf(left), key);
    else box.delete(key);
  }
  return add(tx, where, config, [...taken.values()]);
}

/** Removes entries (those gone already are skipped), this tab's mark, and stores the endpoint's wait. */
async function remove(tx: IDBTransaction, where: Where, op: StorageOp & { op: 'remove' }): Promise<void> {
  const box = tx.objectStore(CONFIG);
  if (op.unmark) box.delete(MARK + where.sessionId);
  if (op.notBefore === undefined) box.delete(NOT_BEFORE + endpoint(where));
  else box.put({ until: op.notBefore, by: where.sessionId }, NOT_BEFORE + endpoint(where));
  if (!op.uuids.length) return;
  const size = await sizeOf(tx);
  for (const e of await dropFromRecords(tx, EVENTS, new Set(op.uuids))) {
    size.count--;
    size.bytes -= e.bytes;
  }
  box.put(size, SIZE_KEY);
}

/** The records of `store` that may hold any of `uuids` (by the index over their range, where there is one), with their keys. */
async function recordsOf(tx: IDBTransaction, store: string, uuids: string[]): Promise<{ k: IDBValidKey; value: unknown }[]> {
  if (!uuids.length) return [];
  const box = tx.objectStore(store);
  const sorted = [...uuids].sort();
  const range = IDBKeyRange.bound(sorted[0], sorted.at(-1));
  const keys = new Set((await promisifyRequest(box.indexNames.contains(BY_UUID) ? box.index(BY_UUID).getAllKeys(range) : box.getAllKeys())) as IDBValidKey[]);
  return Promise.all([...keys].map((k) => promisifyRequest(box.get(k)).then((value: unknown) => ({ k, value }))));
}

/** Which of `entries` are stored already (usually none: one request finds no record in their range). */
async function storedOf(tx: IDBTransaction, entries: OutboxEntry[]): Promise<string[]> {
  const wanted = new Set(entries.map((e) => e.uuid));
  const records = await recordsOf(tx, EVENTS, [...wanted]);
  return records.flatMap(({ value }) => entriesOf(value).map((e) => e.uuid)).filter((u) => wanted.has(u));
}

/** Takes `gone` out of every record holding them; returns each removed entry once. */
async function dropFromRecords(tx: IDBTransaction, store: string, gone: Set<string>): Promise<OutboxEntry[]> {
  const box = tx.objectStore(store);
  const removed = new Map<string, OutboxEntry>();
  for (const { k, value } of await recordsOf(tx, store, [...gone])) {
    const all = entriesOf(value);
    const kept = all.filter((e) => !gone.has(e.uuid));
    for (const e of all) if (gone.has(e.uuid)) removed.set(e.uuid, e);
    if (kept.length === all.length) continue;
    if (kept.length) box.put(batchOf(kept), k);
    else box.delete(k);
  }
  return [...removed.values()];
}

/** What tabs have marked (but `except`'s): marks that have not expired (one dated too far ahead, after a clock set back, still counts: when unsure, it may fly). Any build's. */
async function marked(tx: IDBTransaction, wall: number, except?: string): Promise<Set<string>> {
  const uuids = new Set<string>();
  for (const [key, m] of await marks(tx)) if (key !== MARK + except && live(m, wall)) for (const u of m.uuids as unknown[]) uuids.add(String(u));
  return uuids;
}

/** A list deletes the marks that have expired (a tab that crashed or closed mid-request), so that they never pile up. */
async function forgetExpired(tx: IDBTransaction, wall: number): Promise<void> {
  for (const [key, m] of await marks(tx)) if (!live(m, wall)) tx.objectStore(CONFIG).delete(key);
}

type Mark = { uuids?: unknown; until?: unknown };
const live = (m: Mark | undefined, wall: number) => Number(m?.until) > wall && Array.isArray(m?.uuids);

async function marks(tx: IDBTransaction): Promise<[IDBValidKey, Mark][]> {
  const range = IDBKeyRange.bound(MARK, `${MARK}\uffff`);
  const box = tx.objectStore(CONFIG);
  const [keys, values] = (await Promise.all([promisifyRequest(box.getAllKeys(range)), promisifyRequest(box.getAll(range))])) as [IDBValidKey[], Mark[]];
  return keys.map((k, i) => [k, values[i]!]);
}

/** The outbox's size (count and bytes), for config(). */
export const outboxSize = (db: Storage) => db.transaction([CONFIG, EVENTS], 'readonly', sizeOf);

/** The stored size, recounted from the entries if it is missing or impossible (never trusted blindly). */
async function sizeOf(tx: IDBTransaction): Promise<{ count: number; bytes: number }> {
  const s = await get<{ count: number; bytes: number }>(tx, CONFIG, SIZE_KEY);
  if (isRecord(s) && Number.isSafeInteger(s.count) && s.count >= 0 && Number.isFinite(s.bytes) && s.bytes >= 0) return { count: s.count, bytes: s.bytes };
  const all = await stored(tx, EVENTS);
  return { count: all.length, bytes: all.reduce((n, e) => n + (Number(e.bytes) || 0), 0) };
}

/** Every entry of `store`, oldest first, each once. */
async function stored(tx: IDBTransaction, store: string): Promise<OutboxEntry[]> {
  const seen = new Set<string>();
  const all: OutboxEntry[] = [];
  for (const value of (await promisifyRequest(tx.objectStore(store).getAll())) as unknown[]) {
    for (const e of entriesOf(value)) {
      if (seen.has(e.uuid)) continue;
      seen.add(e.uuid);
      all.push(e);
    }
  }
  return all.sort(byUuid);
}

const byUuid = (a: OutboxEntry, b: OutboxEntry) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0);

/**
 * A record per write, `{ uuid: [its entries' uuids], entries }`: a put clones its value on the main
 * thread at a cost per byte, and every request costs a task's worth of overhead besides, so a
 * record per write, not per event, keeps storage within the frame budget.
 */
const batchOf = (entries: OutboxEntry[]) => ({ uuid: entries.map((e) => e.uuid), entries });

/** A write's record, keyed by its oldest uuid (the store reads oldest first), its newest and its count. */
function putBatch(tx: IDBTransaction, entries: OutboxEntry[]): void {
  if (!entries.length) return;
  const sorted = [...entries].sort(byUuid);
  tx.objectStore(EVENTS).put(batchOf(sorted), `${sorted[0]!.uuid} ${sorted.at(-1)!.uuid} ${sorted.length}`);
}

/** A record's entries: a write's (version 3 on), or one event (version 2's outbox). */
function entriesOf(value: unknown): OutboxEntry[] {
  const all = isRecord(value) && Array.isArray(value.entries) ? value.entries : [value];
  return all.filter((e): e is OutboxEntry => isRecord(e) && typeof e.uuid === 'string');
}

// ---- the journal (localStorage) ----------------------------------------------------------------

/**
 * What only this page holds, kept in synchronous calls so that it survives the page (the
 * contract's journal), replacing what it kept before (none forgets it): events never written,
 * and cuts not stored. Where localStorage cannot be written, a put of the events issued now is the
 * last resort (it may die with the page).
 */
export function journalLeaving(db: Storage, sessionId: string, entries: OutboxEntry[], changes: { id: string; change: ConfigChange }[]): void {
  const kept = new Set(changes.map((c) => JOURNAL_CHANGE + c.id));
  // Only what this page journaled as it left before: a change kept here when a full disk refused
  // it (keepChange, under the same key) is stored, not left behind.
  for (const key of left.get(sessionId) ?? []) if (!kept.has(key)) forget(key);
  left.set(sessionId, kept);
  for (const { id, change } of changes) journal(JOURNAL_CHANGE + id, change);
  const key = JOURNAL_EVENTS + sessionId;
  if (!entries.length) return forget(key);
  if (journal(key, entries)) return;
  void db.transaction([EVENTS], 'readwrite', (tx) => putBatch(tx, entries)).catch(() => undefined);
}

/** The change keys each page journaled as it left (replaced by its next journal). */
const left = new Map<string, Set<string>>();

/** Writes a journal key; false if localStorage refused (missing, full, sandboxed). */
function journal(key: string, value: unknown): boolean {
  try {
    globalThis.localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false;
  }
}

function forget(key: string): void {
  try {
    globalThis.localStorage.removeItem(key);
  } catch {
    // nothing kept there either
  }
}

function journalKeys(prefix: string): string[] {
  try {
    return Object.keys(globalThis.localStorage ?? {}).filter((k) => k.startsWith(prefix));
  } catch {
    return [];
  }
}

function readJournal(key: string): unknown {
  try {
    return JSON.parse(globalThis.localStorage.getItem(key) ?? 'null');
  } catch {
    return undefined;
  }
}

/** The journaled changes, oldest first (by when they were made), each valid or skipped. */
function journaledChanges(): Journaled {
  const changes: Journaled = [];
  for (const key of journalKeys(JOURNAL_CHANGE)) {
    const value = readJournal(key);
    if (isRecord(value)) changes.push([key.slice(JOURNAL_CHANGE.length), cleanChange(value)]);
  }
  return changes.sort((a, b) => (a[1].cutAt ?? 0) - (b[1].cutAt ?? 0));
}

/** A journaled change, as the contract knows changes: an opt-out and a cut, or a clear (anything else is dropped). */
function cleanChange(v: Record<string, unknown>): ConfigChange {
  return {
    ...(v.choice === 'disabled' || v.choice === 'enabled' ? { choice: v.choice, choiceTime: typeof v.choiceTime === 'string' ? v.choiceTime : new Date().toISOString() } : {}),
    ...(typeof v.analyticsId === 'string' && v.analyticsId ? { analyticsId: v.analyticsId } : {}),
    cutAt: Number.isFinite(v.cutAt) ? (v.cutAt as number) : Date.now(),
  };
}

// ---- ids ---------------------------------------------------------------------------------------

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
    ...(Array.isArray(value.applied) ? { applied: value.applied.filter((x): x is string => typeof x === 'string') } : {}),
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
  forget(LEGACY_KEY);
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
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
const CHECK_MS = 250;
