// Regressions for problems found in review: each of these once let data out, or let an
// opt-out be undone, or threw.
import { describe, expect, test } from 'vitest';
import { createAnalytics, hashed } from '../../src';
import { arrived, failNext, failOutboxWrites, openApp, pages, post, received, sleep, start, waitFor, storedConfig, storeConfig } from './helpers';
import { SAMPLES } from './samples';

const storedId = async () => (await storedConfig())!.analyticsId;

describe('module-owned properties cannot be supplied by the caller', () => {
  test('rerun_url, hashed_root_domain and app_env from record() or recordNative() are replaced', async () => {
    const { a, key } = start({ appEnv: 'web_viewer' });
    a.record('viewer_started', { ...SAMPLES.viewer_started, rerun_url: `${location.href}&secret=1`, hashed_root_domain: 'corp.example', app_env: 'other' } as never);
    a.recordNative({
      time_utc: '2025-04-03T01:20:10Z',
      kind: 'Append',
      name: 'open_recording',
      props: {
        rerun_url: { String: 'https://intranet.corp/private?token=abc' },
        application_id: { String: 'rerun_example_x' },
        recording_id: { String: 'r' },
        store_source: { String: 'file' },
        store_version: { String: '1' },
        app_id_starts_with_rerun_example: { Bool: true },
      },
    });
    const events = await arrived(key, 2);
    for (const e of events) {
      expect(e.properties).not.toHaveProperty('rerun_url'); // this page is not on rerun.io
      expect(e.properties).not.toHaveProperty('hashed_root_domain'); // nor on any domain
      expect(e.properties.app_env).toBe('web_viewer');
    }
  });
});

describe('an opt-out cannot be undone behind the user\'s back', () => {
  test('a storage re-read started by another tab\'s message does not undo a later setEnabled(false)', async () => {
    const { a, key } = start();
    await a.ready;
    // The window is a few milliseconds wide and its place depends on when the message lands:
    // try several delays between the message and the opt-out.
    for (let delay = 0; delay <= 6; delay++) {
      await a.setEnabled(true);
      post({ change: 'metadata', choice: 'unset' }); // another tab changed something: this tab re-reads…
      await sleep(delay);
      await a.setEnabled(false); // …and the user opts out while that read may be in flight
      await sleep(30);
      expect(await a.config(), `delay ${delay} ms`).toMatchObject({ enabled: false, reason: 'user-opted-out' });
    }
    a.record('settings-opened');
    await a.flush();
    await sleep(150);
    expect((await received(key)).requests).toHaveLength(0);
  });

  test('an opt-out when the disk refuses every write is still kept (journaled, the outbox emptied by deletes only); a channel message cannot turn it back on', async () => {
    const { a, key } = start();
    await a.ready;
    const put = IDBObjectStore.prototype.put;
    IDBObjectStore.prototype.put = function () {
      throw new DOMException('disk full', 'QuotaExceededError');
    };
    try {
      await a.setEnabled(false);
    } finally {
      IDBObjectStore.prototype.put = put;
    }
    expect(await a.config()).toMatchObject({ enabled: false, reason: 'user-opted-out' });
    post({ change: 'metadata', choice: 'enabled' });
    await sleep(150);
    expect(a.isEnabled()).toBe(false);
    a.record('settings-opened');
    await a.flush();
    await sleep(150);
    expect((await received(key)).requests).toHaveLength(0);
  });
});

test('one posthog-js instance serves every analytics instance of the page, however many come and go', async () => {
  const { posthog } = await import('posthog-js/dist/module.slim.no-external.js');
  const ours = () => Object.keys(posthog).filter((k) => k.startsWith('rerun-analytics-'));
  for (let i = 0; i < 3; i++) {
    const { a, key } = start({ flushIntervalMs: 10_000 });
    a.record('settings-opened');
    await Promise.all([a.flush(), a.flush(), a.flush()]);
    await arrived(key, 1);
    await a.shutdown();
  }
  expect(ours()).toHaveLength(1);
});

test('clear(): the id events carry while the write is pending is the id that gets stored', async () => {
  const { a, key } = start();
  await a.ready;
  const clearing = a.clear();
  await sleep(0); // clear() has dropped what was pending; its write is still in flight
  a.record('settings-opened');
  await a.flush();
  await clearing;
  const [e] = await arrived(key, 1);
  expect(e!.properties.distinct_id).toBe(await storedId());
  expect((await a.config()).analyticsId).toBe(await storedId());
});

test('a meta policy added after start counts at once in isEnabled()', async () => {
  const { a } = start();
  await a.ready;
  expect(a.isEnabled()).toBe(true);
  const meta = Object.assign(document.createElement('meta'), { name: 'rerun-analytics', content: 'off' });
  document.head.append(meta);
  try {
    expect(a.isEnabled()).toBe(false);
  } finally {
    meta.remove();
  }
});

test('junk that cannot become a string does not make hashed() or options throw the wrong way', () => {
  expect(() => hashed(Object.create(null) as never)).not.toThrow();
  expect(() => hashed({ toString: () => { throw new Error('x'); } } as never)).not.toThrow();
  expect(() => createAnalytics({ projectKey: 'k', toString: 'x' } as never)).toThrow(/unknown option "toString"/);
});

describe('third review', () => {
  test('clear() while posthog-js is still loading: what was recorded under the old id never leaves', async () => {
    const key = `phc_clear_loading_${Math.random().toString(36).slice(2)}`;
    const page = await openApp(key);
    await pages.pageRoute(page, '**/*posthog-js*', 'delay'); // the chunk takes 3 s
    const result = (await pages.pageEval(page, `(async () => {
      await analytics.ready;
      const oldId = (await analytics.config()).analyticsId;
      analytics.record('settings-opened');
      const flushed = analytics.flush(); // sorts what waits, then waits for posthog-js
      await new Promise((r) => setTimeout(r, 200));
      await analytics.clear();
      await flushed;
      await new Promise((r) => setTimeout(r, 300));
      return { oldId, audit: analytics.audit() };
    })()`)) as { oldId: string; audit: { outcome: string; reason: string }[] };
    await pages.closePage(page);
    expect(result.audit.map((e) => `${e.outcome}:${e.reason}`)).toEqual(['dropped:cleared']);
    expect((await received(key)).events.filter((e) => e.properties.distinct_id === result.oldId)).toEqual([]);
  });

  test('another tab\'s change makes this tab re-read storage, but it keeps delivering (no hand-over, no double send)', async () => {
    const { a, key } = start();
    await a.ready;
    await a.flush();
    expect((await a.config()).delivery.delivering).toBe(true);
    const held = async () => (await navigator.locks.query()).held?.filter((l) => l.name?.endsWith(key)).length ?? 0;
    expect(await held()).toBe(1);
    // A hand-over would show as the lock asked for again.
    const request = navigator.locks.request;
    let asked = 0;
    navigator.locks.request = function (this: LockManager, ...args: never[]) {
      asked++;
      return (request as (...a: never[]) => Promise<unknown>).apply(this, args);
    } as typeof request;
    try {
      const stored = (await storedConfig())!;
      await storeConfig({ ...stored, metadata: { from_other_tab: 'x' } });
      post({ change: 'metadata', choice: stored.choice });
      const after = await waitFor(() => a.config(), (c) => c.metadata.from_other_tab === 'x'); // it read storage again…
      expect(after.delivery.delivering).toBe(true); // …and still leads
    } finally {
      navigator.locks.request = request;
    }
    expect(asked).toBe(0);
    expect(await held()).toBe(1);
    a.record('settings-opened');
    await a.flush();
    await arrived(key, 1);
    await sleep(300);
    expect((await received(key)).events).toHaveLength(1);
  });

  test('another tab\'s metadata change or opt-in: this tab reads storage again without flickering to "loading"', async () => {
    const { a } = start();
    await a.ready;
    const seen: string[] = [];
    const off = a.subscribe((s) => seen.push(`${s.enabled}:${s.reason}`));
    for (const [change, value] of [['metadata', 'x'], ['choice', 'y']] as const) {
      const stored = (await storedConfig())!;
      await storeConfig({ ...stored, metadata: { from_other_tab: value }, ...(change === 'choice' ? { choice: 'enabled' } : {}) });
      post({ change, choice: change === 'choice' ? 'enabled' : stored.choice });
      await waitFor(() => a.config(), (c) => c.metadata.from_other_tab === value); // it read storage again
    }
    off();
    expect(seen).toEqual(['true:user-opted-in']); // the opt-in read, and nothing in between
  });

  test('control: another tab\'s clear() does hold this tab at "loading" until it has the new id', async () => {
    const { a } = start();
    await a.ready;
    const seen: string[] = [];
    const off = a.subscribe((s) => seen.push(`${s.enabled}:${s.reason}`));
    const stored = (await storedConfig())!;
    await storeConfig({ ...stored, analyticsId: 'id-from-other-tab', metadata: {} });
    post({ change: 'clear', choice: stored.choice });
    await waitFor(() => a.config(), (c) => c.analyticsId === 'id-from-other-tab');
    off();
    expect(seen).toEqual(['false:loading', 'true:default']);
  });

  test('in memory (IndexedDB failed), the outbox keeps its bounds: the oldest go, with a reason', async () => {
    const { a } = start({ apiHost: 'http://127.0.0.1:9', flushIntervalMs: 3_600_000, auditCapacity: 2000 });
    await a.ready;
    const restore = failOutboxWrites();
    try {
      a.record('settings-opened');
      await waitFor(() => a.config(), (c) => c.delivery.outbox === 'memory');
      for (let i = 0; i < 1005; i++) {
        a.record('settings-opened');
        if (i % 500 === 499) await sleep(0);
      }
      a.audit();
      expect((await a.config()).delivery.pending).toBe(1000);
      expect(a.audit().filter((e) => e.reason === 'outbox full: the oldest waiting events are dropped')).toHaveLength(6);
    } finally {
      restore();
    }
  });

  test('the per-tick bound counts events, not calls: two native batches of 1000 in one tick', async () => {
    const { a } = start({ apiHost: 'http://127.0.0.1:9', flushIntervalMs: 3_600_000 });
    await a.ready;
    const item = { event: 'settings-opened', timestamp: '2026-11-29T17:22:05Z', properties: {} };
    const batch = JSON.stringify({ api_key: 'k', batch: Array(1000).fill(item) });
    a.recordNative(batch);
    a.recordNative(batch);
    expect(a.audit()).toEqual([expect.objectContaining({ name: '(1000 events)', reason: 'too many at once: more than 1000 recorded within one tick' })]);
  });

  test('a revoked proxy as props does not throw into the host', async () => {
    const { a } = start();
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(() => a.record('settings-opened', proxy as never)).not.toThrow();
    expect(() => a.recordNative(proxy as never)).not.toThrow();
    expect(a.audit().map((e) => e.reason)).toEqual([expect.stringMatching(/^internal error: /), expect.stringMatching(/^internal error: /)]);
  });
});

describe('second review', () => {
  test('a request that failed before the opt-out is not retried after it (posthog-js retry queue emptied)', async () => {
    const { a, key } = start();
    await failNext(key, 'count=1&status=503');
    a.record('settings-opened');
    await a.flush();
    await waitFor(() => received(key), (r) => r.requests.some((q) => q.status === 503)); // it failed: posthog-js queues a retry in ~3 s
    await a.setEnabled(false);
    await sleep(7000); // past the first retry (3 s ± 50 %)
    const r = await received(key);
    expect(r.requests.map((q) => q.status)).toEqual([503]);
    expect(r.events).toHaveLength(0);
  }, 15_000);

  test('control: without an opt-out, posthog-js does retry the failed request', async () => {
    const { a, key } = start();
    await failNext(key, 'count=1&status=503');
    a.record('settings-opened');
    await a.flush();
    const r = await waitFor(() => received(key), (x) => x.events.length === 1, 10_000);
    expect(r.requests.map((q) => q.status)).toEqual([503, 200]);
  }, 15_000);

  test('an opt-out made while storage could not be read is still stored for the next page load', async () => {
    const open = indexedDB.open;
    let failures = 1;
    indexedDB.open = function (this: IDBFactory, ...args: Parameters<IDBFactory['open']>) {
      if (failures-- > 0) throw new DOMException('blocked once', 'SecurityError');
      return open.apply(this, args);
    } as IDBFactory['open'];
    try {
      const first = start();
      await first.a.disable();
      // Its write read the stored config in the same transaction: storage works again, and says so.
      expect(await first.a.config()).toMatchObject({ reason: 'user-opted-out', storage: 'indexeddb' });
    } finally {
      indexedDB.open = open;
    }
    const next = start();
    expect(await next.a.config()).toMatchObject({ enabled: false, reason: 'user-opted-out' });
  });

  test('record(), recordNative() and setMetadata() absorb input whose getters throw unprintable values', async () => {
    const { a } = start();
    const evil = { get source_type(): string { throw Object.create(null); }, started_successfully: true };
    expect(() => a.record('load_data_source', evil as never)).not.toThrow();
    expect(() => a.recordNative({ get name(): string { throw Object.create(null); } } as never)).not.toThrow();
    await expect(a.setMetadata({ get team(): string { throw new Error('boom'); } } as never)).resolves.toBeUndefined();
    expect(a.audit().map((e) => e.outcome)).toEqual(['dropped', 'dropped', 'dropped']);
    expect(a.audit()[2]).toMatchObject({ name: '(metadata)', reason: 'setMetadata: its argument could not be read: nothing stored' });
  });

});
