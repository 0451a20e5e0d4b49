// An opt-out in one tab while the delivering tab's main thread is busy (a WASM compile, a long
// layout) with a request of earlier events decided but not yet started: setEnabled(false) waits
// at most 3 s for other tabs' requests, then resolves; a request decided before it is not started
// after its deadline (1 s), so nothing recorded before the opt-out arrives after it resolved.
import { expect, test } from 'vitest';
import { appPages, configOf, evalIn, newKey, received, sleep, waitFor } from './helpers';

const { app } = appPages();

const BUSY_MS = 4500;

/**
 * The busy tab: no CompressionStream (posthog-js then builds the body in the same task); once
 * armed, its main thread is kept busy for BUSY_MS right after the module queues the task that
 * makes its next request (its "send" effect, a scheduler.postTask), so the request is decided but
 * not started. It says so on a channel of the test's own before it goes busy.
 */
const BUSY_TAB = `(() => {
  delete globalThis.CompressionStream;
  const post = Scheduler.prototype.postTask;
  Scheduler.prototype.postTask = function (callback, options) {
    const task = post.call(this, callback, options);
    if (window.__armed && /\\bsend\\b/.test(new Error().stack || '')) {
      window.__armed = false;
      queueMicrotask(() => {
        new BroadcastChannel('busy-tab').postMessage('busy');
        const end = performance.now() + ${BUSY_MS};
        while (performance.now() < end) {}
        window.__busyUntil = Date.now();
      });
    }
    return task;
  };
})();`;

test('an opt-out while the delivering tab is busy with a request decided: nothing recorded before it arrives after setEnabled(false) resolved', async () => {
  const key = newKey('busy');
  const b = await app(key, '&toggle=0&flush=60000', BUSY_TAB);
  await evalIn(b, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); })`);
  await waitFor(() => received(key), (r) => r.events.length === 1, 10_000); // B delivers; posthog-js is loaded
  await waitFor(() => configOf(b), (c) => c.delivery.delivering && c.delivery.transport === 'ready');
  expect(await evalIn(b, 'typeof CompressionStream'), 'precondition: no CompressionStream in B').toBe('undefined');

  const a = await app(key, '&toggle=0&flush=60000');
  await waitFor(() => configOf(a), (c) => c.reason === 'default' && !c.delivery.delivering);
  // A opts out the moment B goes busy, and notes when setEnabled(false) resolved (this machine's clock, as the sink's).
  await evalIn(a, `new BroadcastChannel('busy-tab').onmessage = () => analytics.setEnabled(false).then(() => { window.__offAt = Date.now(); }); 0`);

  await evalIn(b, `window.__armed = true; for (let i = 0; i < 3; i++) analytics.record('help-button-clicked'); void analytics.flush(); 0`);
  const offAt = (await waitFor(() => evalIn(a, 'window.__offAt ?? 0') as Promise<number>, (t) => t > 0, 15_000)) as number;
  await waitFor(() => evalIn(b, 'window.__busyUntil ?? 0') as Promise<number>, (t) => t > 0, 15_000);
  expect(await evalIn(b, 'window.__armed'), 'precondition: B went busy with its request decided').toBe(false);
  await sleep(3000); // whatever B does once it is free again
  const late = (await received(key)).events.filter((e) => e.event === 'help-button-clicked' && e.at > offAt).map((e) => `+${e.at - offAt} ms`);
  expect(late, 'recorded before the opt-out, arrived after setEnabled(false) resolved').toEqual([]);
}, 60_000);
