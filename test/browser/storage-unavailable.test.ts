// When storage is missing or full, it fails closed. A page without IndexedDB (locked-down and
// privacy browsers, some webviews) is a browser whose storage is unavailable: off, said so, and
// the guard still takes what a shipped viewer posts. An opt-out when the origin's storage is full
// (Chromium then refuses every transaction that puts; one that only deletes succeeds) is kept
// nonetheless: journaled, the outbox emptied by deletes, and what was recorded before it never
// leaves, this visit or the next.
import { describe, expect, test } from 'vitest';
import type { RouteSpec } from '../page-commands';
import { appPages, configOf, db, evalIn, failNext, INIT, newKey, outboxEntries, pages, received, sleep, storedConfig, waitFor } from './helpers';
import { PIPELINE_TEXT } from './pipeline-fixtures';

const { app } = appPages();

/** IndexedDB absent altogether: the global is gone. */
const NO_INDEXEDDB_GLOBAL = `delete window.indexedDB; delete Window.prototype.indexedDB;`;
/** Never the real endpoint: what reaches the network for tel.rerun.io is answered 404 here (and still shows in pagePosts). */
const TEL_ROUTE: RouteSpec[] = [{ pattern: 'tel\\.rerun\\.io', flags: 'i', action: 'notfound' }];

describe('a page without IndexedDB', () => {
  test.each([
    ['missing (no global)', NO_INDEXEDDB_GLOBAL],
    ['blocked (open throws)', INIT.noIndexedDB],
  ])('IndexedDB %s: off, and config().reason says storage is unavailable (not "not-a-browser")', async (_what, init) => {
    const p = await app(newKey('noidb_reason'), '', init);
    const c = (await evalIn(p, `analytics.ready.then(() => analytics.config()).then((c) => ({ enabled: c.enabled, reason: c.reason }))`)) as { enabled: boolean; reason: string };
    expect(c).toEqual({ enabled: false, reason: 'storage-unavailable' });
  });

  test.each([
    ['missing (no global)', NO_INDEXEDDB_GLOBAL],
    ['blocked (open throws)', INIT.noIndexedDB],
  ])('IndexedDB %s: the guard takes the viewer\'s $set POST after an opt-out; nothing reaches the network', async (_what, init) => {
    const key = newKey('noidb_guard');
    const p = await app(key, '', init, TEL_ROUTE);
    const out = (await evalIn(
      p,
      `(async () => {
        await analytics.ready;
        await analytics.setEnabled(false);
        rerun.guardViewerTelemetry(analytics);
        let status;
        try { status = (await fetch('https://tel.rerun.io/api/pog', { method: 'POST', body: ${JSON.stringify(PIPELINE_TEXT.set_person)} })).status; } catch (e) { status = String(e); }
        return { status, audit: analytics.audit() };
      })()`,
    )) as { status: number | string; audit: { name: string; outcome: string }[] };
    expect((await pages.pagePosts(p)).filter((x) => /tel\.rerun\.io/i.test(x.url)).map((x) => x.url), 'POSTs that reached the network').toEqual([]);
    expect(out.status, 'what the viewer was answered').toBe(200);
    expect(out.audit.map((e) => `${e.name}:${e.outcome}`)).toEqual(['$set:dropped']);
    expect((await received(key)).requests).toEqual([]);
  });
});

// ---- a full disk ---------------------------------------------------------------------------------
// The storage is really full: the test browser keeps IndexedDB in memory, with a limit (~1.5 GB
// here); a database of the test's own is filled with random bytes until even a 64-byte put fails.
// (CDP's Storage.overrideQuotaForOrigin is not enforced by IndexedDB in this Chromium.) The space is
// freed again with Storage.clearDataForOrigin (deleting the filler does not give it back here), the
// module's database saved before and written back after (unfill()).

const FILLER = 'full-disk-filler';
/** Fills the origin's storage: 100 MB puts of random bytes, then ever smaller ones, until a 64-byte put fails. */
const FILL = `(async () => {
  const db = await new Promise((res, rej) => { const r = indexedDB.open(${JSON.stringify(FILLER)}); r.onupgradeneeded = () => r.result.createObjectStore('blobs'); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const random = new Uint8Array(100 * 1024 * 1024);
  for (let o = 0; o < random.length; o += 65536) crypto.getRandomValues(random.subarray(o, o + 65536));
  const put = (v, k) => new Promise((res) => { const tx = db.transaction('blobs', 'readwrite'); tx.objectStore('blobs').put(v, k); tx.oncomplete = () => res('ok'); tx.onabort = () => res(tx.error && tx.error.name); });
  let n = 0, refused = '';
  for (let size = random.length; size >= 64 && n < 500; ) {
    const r = await put(size === random.length ? random : random.slice(0, size), 'k' + n++);
    if (r !== 'ok') { refused = r; size = Math.floor(size / 8); }
  }
  db.close();
  return refused;
})()`;
/** A transaction on the module's database doing `op`: 'ok', or the error it aborted with. */
const probe = (page: string, op: string) =>
  evalIn(page, `new Promise((res) => { const r = indexedDB.open('rerun-analytics'); r.onupgradeneeded = () => r.transaction.abort(); r.onerror = () => res('no database'); r.onsuccess = () => { const db = r.result; const tx = db.transaction(['config'], 'readwrite'); ${op}; tx.oncomplete = () => (db.close(), res('ok')); tx.onabort = () => (db.close(), res(String(tx.error && tx.error.name))); }; })`) as Promise<string>;
const STORES = ['config', 'events', 'outbox'];
type Saved = { store: string; key: IDBValidKey; value: unknown }[];

/** The module's database as it is (every store, keys and values). */
const snapshot = () =>
  db.transaction(STORES, 'readonly', async (tx) => {
    const out: Saved = [];
    for (const store of STORES) {
      const box = tx.objectStore(store);
      const [keys, values] = await Promise.all([box.getAllKeys(), box.getAll()].map((r) => new Promise<unknown[]>((res) => (r.onsuccess = () => res(r.result as unknown[])))));
      keys!.forEach((key, i) => out.push({ store, key: key as IDBValidKey, value: values![i] }));
    }
    return out;
  });
/** Writes a snapshot back (with nothing to restore, a put and its delete: a write that needs space). */
const restore = (records: Saved) => {
  const write = () =>
    db.transaction(STORES, 'readwrite', (tx) => {
      tx.objectStore('config').put({ probe: true }, 'full-probe');
      tx.objectStore('config').delete('full-probe');
      records.forEach((x) => tx.objectStore(x.store).put(x.value, x.key));
    });
  return write().catch(write);
};
/** Frees what FILL took: the origin's IndexedDB cleared, the module's database saved first and written back, as it was. */
async function unfill(page: string, keep: boolean) {
  const saved = keep ? await snapshot() : [];
  const origin = new URL(await pages.pageUrl(page)).origin;
  await pages.pageCdp(page, 'Storage.clearDataForOrigin', { origin, storageTypes: 'indexeddb' });
  await waitFor(() => restore(saved).then(() => 'ok', (e: unknown) => String(e)), (r) => r === 'ok', 20_000);
}

describe('a full disk', () => {
  test('setEnabled(false) when every put is refused: kept (journaled, the outbox emptied by deletes); this visit and the next are off, and the 5 events recorded before never arrive', async () => {
    const key = newKey('quota');
    const p = await app(key, '&toggle=0');
    const tools = await app(key, '&bare=1'); // a page of the origin without the module: fills and frees storage
    await evalIn(p, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); })`);
    await waitFor(() => received(key), (r) => r.events.length === 1, 10_000); // delivering; posthog-js loaded
    await failNext(key, 'count=1000&status=503'); // the endpoint fails for now: the next events wait in the outbox
    await evalIn(p, `(async () => { for (let i = 0; i < 5; i++) analytics.record('help-button-clicked'); await analytics.flush(); })()`);
    await waitFor(() => configOf(p), (c) => c.delivery.pending === 5 && c.delivery.lastError === 'HTTP 503');

    const seen: Record<string, unknown> = {};
    let full = false;
    try {
      full = true;
      expect(await evalIn(tools, FILL), 'precondition: storage filled until puts fail').toBe('QuotaExceededError');
      expect(await probe(tools, `tx.objectStore('config').put({ probe: true }, 'full-probe')`), 'precondition: a transaction that puts is refused').toBe('QuotaExceededError');
      expect(await probe(tools, `tx.objectStore('config').delete('full-probe')`), 'precondition: one that only deletes succeeds').toBe('ok');

      seen.resolved = await evalIn(p, `Promise.race([analytics.setEnabled(false).then(() => 'resolved'), new Promise((r) => setTimeout(() => r('pending after 10 s'), 10000))])`);
      seen.thisVisit = (await configOf(p)).reason;
      seen.waitingInOutbox = (await outboxEntries()).filter((e) => e.projectKey === key).length;
      await pages.pageReload(p); // the next visit, storage still full
      seen.reloadWhileFull = await waitFor(() => configOf(p).then((c) => c.reason), (r) => r !== 'loading', 10_000);
      await unfill(tools, true); // space again (the user cleaned up other data)
      full = false;
      await failNext(key, 'count=0'); // and the endpoint works again
      const next = await app(key, '&toggle=0');
      seen.nextVisit = await waitFor(() => configOf(next).then((c) => c.reason), (r) => r !== 'loading', 10_000);
      seen.storedChoice = (await storedConfig())?.choice;
      await evalIn(next, 'analytics.flush()');
      await sleep(3000);
      seen.arrived = (await received(key)).events.filter((e) => e.event === 'help-button-clicked').length;
    } finally {
      if (full) await unfill(tools, false);
    }
    expect(seen).toEqual({ resolved: 'resolved', thisVisit: 'user-opted-out', waitingInOutbox: 0, reloadWhileFull: 'user-opted-out', nextVisit: 'user-opted-out', storedChoice: 'disabled', arrived: 0 });
  }, 90_000);
});
