// The stored config: a persistent anonymous id in IndexedDB, adopted from the old web build,
// renewed by clear(), surviving a real page reload.
import { describe, expect, test } from 'vitest';
import { promisifyRequest } from 'idb-keyval';
import type { StorageOp } from '../../src/core/contract';
import { MARK } from '../../src/core/names';
import { CONFIG, EVENTS, LEGACY_KEY, LEGACY_OUTBOX, outboxSize, runStorageOp, type OutboxEntry } from '../../src/store';
import { arrived, db, openApp, outboxEntries, pages, received, sleep, start, waitFor, storedConfig } from './helpers';

const stored = storedConfig;

describe('anonymous id', () => {
  test('a first start makes a nanoid and stores it in IndexedDB with the choice unset', async () => {
    const { a } = start();
    const { analyticsId, sessionId } = await a.config();
    expect(analyticsId).toMatch(/^[A-Za-z0-9_-]{21}$/);
    expect(await stored()).toEqual({ analyticsId, choice: 'unset', metadata: {}, firstSessionId: sessionId }); // this page load made it
  });

  test('the old web build\'s rerun_config id and metadata are adopted', async () => {
    localStorage.setItem(LEGACY_KEY, JSON.stringify({ analytics_id: 'legacy-0123456789abcdef', metadata: { team: { String: 'vision' }, seats: { Integer: 3 }, beta: { Bool: true } } }));
    const { a, key } = start();
    expect(await a.config()).toMatchObject({ analyticsId: 'legacy-0123456789abcdef', metadata: { team: 'vision', seats: 3, beta: true } });
    a.record('settings-opened');
    const [e] = await arrived(key, 1);
    expect(e!.properties.distinct_id).toBe('legacy-0123456789abcdef');
  });

  test.each([
    ['an empty id', JSON.stringify({ analytics_id: '' })],
    ['a non-string id', JSON.stringify({ analytics_id: 42 })],
    ['malformed JSON', '{"analytics_id": '],
  ])('%s in rerun_config is not adopted', async (_what, value) => {
    localStorage.setItem(LEGACY_KEY, value);
    const { a } = start();
    expect((await a.config()).analyticsId).toMatch(/^[A-Za-z0-9_-]{21}$/);
  });

  test('an adopted id is kept once stored, even if rerun_config changes later', async () => {
    localStorage.setItem(LEGACY_KEY, JSON.stringify({ analytics_id: 'first' }));
    await start().a.ready;
    localStorage.setItem(LEGACY_KEY, JSON.stringify({ analytics_id: 'second' }));
    expect((await start().a.config()).analyticsId).toBe('first');
  });

  test('two instances starting at once agree on one id', async () => {
    const ids = await Promise.all([start(), start(), start()].map(async ({ a }) => (await a.config()).analyticsId));
    expect(new Set(ids).size).toBe(1);
  });

  test('clear() makes a new id, wipes metadata and pending events, keeps the choice', async () => {
    localStorage.setItem(LEGACY_KEY, JSON.stringify({ analytics_id: 'legacy-id' }));
    const { a, key } = start({ flushIntervalMs: 300 });
    await a.setEnabled(true);
    await a.setMetadata({ team: 'vision' });
    const before = await a.config();
    a.record('settings-opened'); // pending
    await a.clear();
    const after = await a.config();
    expect(after.analyticsId).not.toBe(before.analyticsId);
    expect(after.analyticsId).toMatch(/^[A-Za-z0-9_-]{21}$/);
    expect(after.metadata).toEqual({});
    expect(after.reason).toBe('user-opted-in');
    expect(localStorage.getItem(LEGACY_KEY)).toBeNull(); // the old copy of the id is forgotten too
    expect(await stored()).toMatchObject({ analyticsId: after.analyticsId, choice: 'enabled', metadata: {} });
    expect(a.audit()).toMatchObject([{ name: 'settings-opened', outcome: 'dropped', reason: 'cleared' }]);
    a.record('help-button-clicked');
    const [e] = await arrived(key, 1);
    expect(e!.event).toBe('help-button-clicked');
    expect(e!.properties.distinct_id).toBe(after.analyticsId);
  });
});

test('opt-in metadata is persisted and sent with the next page load\'s $identify', async () => {
  const first = start();
  await first.a.setMetadata({ team: 'vision' });
  await first.a.setMetadata({ seats: 3 }); // merged, not replaced
  const { a, key } = start();
  expect((await a.config()).metadata).toEqual({ team: 'vision', seats: 3 });
  expect(await stored()).toMatchObject({ metadata: { team: 'vision', seats: 3 } });
  a.record('$identify', { features: 'f', git_hash: 'g', rerun_version: 'v', target: 't', build_date: 'd', debug: false, rerun_workspace: false });
  const [e] = await arrived(key, 1);
  expect(e!.properties.$set).toMatchObject({ team: 'vision', seats: 3, features: 'f' });
});

describe('real pages', () => {
  test('the id survives a real page reload (and is shared by the origin)', async () => {
    const { a } = start();
    const { analyticsId } = await a.config();
    const page = await openApp('phc_reload');
    const first = (await pages.pageEval(page, 'analytics.config().then(c => c.analyticsId)')) as string;
    await pages.pageReload(page);
    const second = (await pages.pageEval(page, 'analytics.config().then(c => c.analyticsId)')) as string;
    const sessions = await pages.pageEval(page, 'analytics.config().then(c => c.sessionId)');
    await pages.closePage(page);
    expect(first).toBe(analyticsId);
    expect(second).toBe(analyticsId);
    expect(sessions).not.toBe((await a.config()).sessionId);
  });

  test('the transport writes no cookie, no localStorage and no sessionStorage key', async () => {
    const key = `phc_storage_${Date.now()}`;
    // Record every storage and cookie write of the page, from before any page script runs.
    const spy = `(() => {
      const log = (globalThis.__writes = []);
      for (const k of ['setItem', 'removeItem', 'clear']) {
        const orig = Storage.prototype[k];
        Storage.prototype[k] = function (...args) { log.push([this === localStorage ? 'local' : 'session', k, String(args[0])]); return orig.apply(this, args); };
      }
      const cookie = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
      Object.defineProperty(Document.prototype, 'cookie', { get() { return cookie.get.call(this); }, set(v) { log.push(['cookie', 'set', String(v)]); cookie.set.call(this, v); }, configurable: true });
    })();`;
    const page = await openApp(key, '', spy);
    await pages.pageEval(page, `(async () => {
      analytics.record('settings-opened');
      analytics.record('$identify', { features: 'f', git_hash: 'g', rerun_version: 'v', target: 't', build_date: 'd', debug: false, rerun_workspace: false });
      await analytics.flush();
    })()`);
    await waitFor(() => received(key), (r) => r.events.length === 2);
    await sleep(200); // let anything posthog-js schedules after sending run too
    const storage = await pages.pageEval(page, `({ cookie: document.cookie, local: Object.keys(localStorage), session: Object.keys(sessionStorage) })`);
    const requests = await pages.pageRequests(page);
    const writes = (await pages.pageEval(page, 'globalThis.__writes')) as string[][];
    await pages.closePage(page);
    console.info(`storage calls by the page: ${JSON.stringify(writes)}`);
    // posthog-js, starting, probes localStorage (writes __mplssupport__ and removes it at once)
    // and deletes keys of its own namespace it may have left before (ph_debug, ph_<key>_…).
    // Nothing else is written, and nothing stays (checked below).
    expect(writes.filter(([, op]) => op !== 'removeItem')).toEqual([['local', 'setItem', '__mplssupport__']]);
    expect(writes.filter(([, op]) => op === 'removeItem').every(([, , k]) => k === '__mplssupport__' || k!.startsWith('ph_'))).toBe(true);
    expect(requests.some((u) => u.includes('posthog-js'))).toBe(true); // the transport did load
    expect(storage).toEqual({ cookie: '', local: [], session: [] });
    expect(await pages.contextCookies()).toEqual([]);
  });
});

describe('the outbox\'s records (a record per write)', () => {
  const where = { projectKey: 'phc_records', apiHost: 'https://records.test', sessionId: 'this-page', wall: Date.now };
  const entry = (n: number, analyticsId: string): OutboxEntry => ({ uuid: `0190c7a0-0000-7000-8000-${String(n).padStart(12, '0')}`, projectKey: where.projectKey, apiHost: where.apiHost, kind: 'Append', name: 'settings-opened', props: {}, at: Date.now(), queuedAt: Date.now(), distinctId: analyticsId, sessionId: 'this-page', bytes: 100, cut: 0 });
  const op = (o: StorageOp) => runStorageOp(db, where, o);
  const records = () => db.transaction([EVENTS], 'readonly', (tx) => promisifyRequest(tx.objectStore(EVENTS).count()));

  test('writes of 3, 3 and 1 entries are 3 records; a list reads the oldest `limit` and says more wait; a removal across records keeps the rest', async () => {
    const { config } = await op({ op: 'read' });
    const all = [1, 2, 3, 4, 5, 6, 7].map((n) => entry(n, config!.analyticsId));
    for (const entries of [all.slice(0, 3), all.slice(3, 6), all.slice(6)]) expect((await op({ op: 'add', entries })).ok).toBe(true);
    expect(await records()).toBe(3);
    const first = await op({ op: 'list', limit: 4, mark: true });
    expect(first.entries!.map((e) => e.uuid)).toEqual(all.slice(0, 4).map((e) => e.uuid));
    expect(first.more).toBe(true);
    await op({ op: 'remove', uuids: [all[1]!.uuid, all[3]!.uuid], unmark: true }); // one from each of the first two records
    expect((await outboxEntries()).map((e) => e.uuid)).toEqual([all[0], all[2], all[4], all[5], all[6]].map((e) => e!.uuid));
    expect(await records(), 'rewritten, not split').toBe(3);
    expect((await outboxSize(db)).count).toBe(5);
    const rest = await op({ op: 'list', limit: 10, mark: true });
    expect(rest.entries).toHaveLength(5);
    expect(rest.more).toBe(false);
    await op({ op: 'remove', uuids: all.map((e) => e.uuid), unmark: true });
    expect(await records(), 'emptied records are deleted').toBe(0);
    expect(await outboxSize(db)).toEqual({ count: 0, bytes: 0 });
  });

  test('a record per event, as version 2 wrote them, is listed and removed the same way', async () => {
    const { config } = await op({ op: 'read' });
    const old = [1, 2].map((n) => entry(n, config!.analyticsId));
    await db.transaction([LEGACY_OUTBOX], 'readwrite', (tx) => old.forEach((e) => tx.objectStore(LEGACY_OUTBOX).put(e, e.uuid)));
    await op({ op: 'add', entries: [entry(3, config!.analyticsId)] });
    expect((await op({ op: 'list', limit: 10, mark: true })).entries!.map((e) => e.uuid)).toEqual([1, 2, 3].map((n) => entry(n, '').uuid));
    await op({ op: 'remove', uuids: [old[0]!.uuid], unmark: true });
    expect((await outboxEntries()).map((e) => e.uuid)).toEqual([2, 3].map((n) => entry(n, '').uuid));
  });

  test('a list deletes the marks that expired (tabs that crashed or closed mid-request): they do not pile up; a live one stays', async () => {
    await op({ op: 'read' });
    const marks = () => db.transaction([CONFIG], 'readonly', (tx) => promisifyRequest(tx.objectStore(CONFIG).getAllKeys(IDBKeyRange.bound(MARK, `${MARK}\uffff`))));
    await db.transaction([CONFIG], 'readwrite', (tx) => {
      tx.objectStore(CONFIG).put({ uuids: ['a'], until: Date.now() - 1 }, `${MARK}crashed`);
      tx.objectStore(CONFIG).put({ uuids: 'garbage' }, `${MARK}broken`);
      tx.objectStore(CONFIG).put({ uuids: ['b'], until: Date.now() + 30_000 }, `${MARK}flying`);
    });
    await op({ op: 'list', limit: 10, mark: false });
    expect(await marks()).toEqual([`${MARK}flying`]);
  });
});
