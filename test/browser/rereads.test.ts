// Reading storage again after another tab's message, with storage held busy: every storage op of
// every tab waits behind a readwrite transaction of this page until it is released. Found by
// attacking the re-read (each failed before its fix): flush() hung while the re-read failed;
// setMetadata in a loop in another tab stopped delivery; an event staged across a list that
// predated the message was lost, unaudited, when the next write failed.
import { afterEach, describe, expect, test } from 'vitest';
import { arrived, failOutboxWrites, holdStorage, openApp, pages, post, received, sleep, start, waitFor } from './helpers';

const opened = new Set<string>();
afterEach(async () => {
  for (const id of [...opened]) await pages.closePage(id).catch(() => undefined);
  opened.clear();
});

const within = <T>(p: Promise<T>, ms: number) => Promise.race([p.then(() => true), sleep(ms).then(() => false)]);

async function warm() {
  const { a, key } = start();
  a.record('settings-opened');
  await a.flush();
  await arrived(key, 1);
  await waitFor(() => a.config(), (c) => c.delivery.delivering && c.delivery.transport === 'ready');
  return { a, key };
}

describe('after a clear() elsewhere, nothing leaves before the re-read', () => {
  test('"clear" then "metadata": the gate says loading until the read, then on again', async () => {
    const { a } = await warm();
    const states: string[] = [];
    a.subscribe((s) => states.push(s.reason));
    const release = await holdStorage();
    post({ change: 'clear', choice: 'unset' });
    post({ change: 'metadata', choice: 'unset' });
    await sleep(50);
    expect(a.isEnabled()).toBe(false);
    expect(states.at(-1)).toBe('loading');
    await release();
    await waitFor(() => a.isEnabled(), (on) => on, 5000);
  });
});

describe('re-reading: liveness', () => {
  test('flush() resolves while storage fails during a re-read (control: it does without the message)', async () => {
    const { a } = await warm();
    const get = IDBObjectStore.prototype.get;
    const failReads = () =>
      (IDBObjectStore.prototype.get = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['get']>) {
        if (this.name === 'config') throw new DOMException('disk error', 'UnknownError');
        return get.apply(this, args);
      } as IDBObjectStore['get']);
    try {
      // Control: storage fails under this tab's own setMetadata (no message): flush() is answered.
      failReads();
      await a.setMetadata({ team: 'x' });
      await waitFor(() => a.config(), (c) => c.reason === 'storage-unavailable', 5000);
      a.record('settings-opened');
      expect(await within(a.flush(), 4000), 'control: flush() with storage unavailable').toBe(true);
      IDBObjectStore.prototype.get = get;
      await waitFor(() => a.config(), (c) => c.reason !== 'storage-unavailable', 20_000);
      // Now the same after another tab's message: the re-read fails.
      failReads();
      post({ change: 'metadata', choice: 'unset' });
      await waitFor(() => a.config(), (c) => c.reason === 'storage-unavailable', 5000);
      a.record('settings-opened');
      expect(await within(a.flush(), 10_000), 'flush() after a message, storage unavailable').toBe(true);
    } finally {
      IDBObjectStore.prototype.get = get;
    }
  }, 60_000);

  test.each([0])('another tab calling setMetadata back to back (pause %i ms) does not hold this tab\'s delivery', async (pause) => {
    const { a, key } = await warm();
    const p = await openApp(key, '&toggle=0&flush=60000');
    opened.add(p);
    await pages.pageEval(p, 'analytics.ready');
    const loop = pages.pageEval(p, `(async () => { const end = Date.now() + 6000; let n = 0; while (Date.now() < end) { await analytics.setMetadata({ n: String(n++) }); await new Promise((r) => setTimeout(r, ${pause})); } return n; })()`);
    await sleep(300);
    for (let i = 0; i < 20; i++) {
      a.record('help-button-clicked');
      await sleep(100);
    }
    const flushed = await within(a.flush(), 3000);
    const got = (await received(key)).events.filter((e) => e.event === 'help-button-clicked').length; // the loop still runs (6 s)
    const n = await loop;
    expect(got, 'events recorded during the loop that arrived while it ran').toBeGreaterThan(0);
    expect(flushed, 'flush() during the loop').toBe(true);
    await arrived(key, 21);
  }, 40_000);

  test('a forged flood of "metadata" messages (one per 4 ms) does not hold delivery', async () => {
    const { a, key } = await warm();
    const ch = new BroadcastChannel('rerun-analytics');
    let flooding = true;
    const flood = (async () => {
      while (flooding) {
        ch.postMessage({ change: 'metadata', choice: 'unset' });
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    try {
      await sleep(100);
      for (let i = 0; i < 10; i++) a.record('help-button-clicked');
      expect(await within(a.flush(), 10_000), 'flush() during the flood').toBe(true);
      await waitFor(() => received(key), (r) => r.events.length >= 11, 10_000); // while it goes on
    } finally {
      flooding = false;
      await flood;
      ch.close();
    }
    await arrived(key, 11);
  }, 30_000);
});

describe('re-reading: nothing is lost', () => {
  test.each([false, true])('an event staged while a list is under way, then (message: %s), then a failing write: kept in memory, delivered', async (message) => {
    const { a, key } = await warm();
    const release = await holdStorage();
    void a.flush(); // a pass: its list waits behind the held storage
    await sleep(50);
    a.record('help-button-clicked');
    a.audit(); // judged now: staged, to be written after the list
    if (message) post({ change: 'metadata', choice: 'unset' });
    await sleep(50);
    const restore = failOutboxWrites();
    await release();
    await sleep(500);
    const mid = await a.config();
    restore();
    await a.flush();
    const r = await waitFor(() => received(key), (x) => x.events.length >= 2, 5000).catch(() => received(key));
    const audit = a.audit().filter((e) => e.name === 'help-button-clicked');
    expect(r.events.length - 1 + audit.filter((e) => e.outcome === 'dropped').length, 'sent, or audited as dropped').toBe(1);
  });
});
