// Regressions for problems found in review: each of these once let data out, or let an
// opt-out be undone, or threw.
import { describe, expect, test } from 'vitest';
import { createStore, get } from 'idb-keyval';
import { createAnalytics, hashed } from '../../src';
import { DB_NAME, STORE_NAME } from '../../src/store';
import { arrived, received, sleep, start } from './helpers';
import { SAMPLES } from './samples';

const storedId = async () => ((await get('config', createStore(DB_NAME, STORE_NAME))) as { analyticsId: string }).analyticsId;
const post = (message: object) => {
  const channel = new BroadcastChannel('rerun-analytics');
  channel.postMessage(message);
  channel.close();
};

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

  test('an opt-out whose write fails stays off (fail closed); a channel message cannot turn it back on', async () => {
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
    expect(await a.config()).toMatchObject({ enabled: false, reason: 'storage-unavailable', storage: 'unavailable' });
    post({ change: 'metadata', choice: 'enabled' });
    await sleep(150);
    expect(a.isEnabled()).toBe(false);
    a.record('settings-opened');
    await a.flush();
    await sleep(150);
    expect((await received(key)).requests).toHaveLength(0);
  });
});

test('concurrent flushes start posthog-js once', async () => {
  const { a, key } = start({ flushIntervalMs: 10_000 });
  a.record('settings-opened');
  await Promise.all([a.flush(), a.flush(), a.flush()]);
  await arrived(key, 1);
  const { posthog } = await import('posthog-js/dist/module.slim.no-external.js');
  const instances = Object.values(posthog as unknown as Record<string, { config?: { token?: string } } | undefined>).filter((v) => v?.config?.token === key);
  expect(instances).toHaveLength(1);
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
