// Nothing is left behind: create → record → shutdown, many times over, leaves no timer pending,
// no window or document listener, no BroadcastChannel, no IndexedDB connection open.
// (The heap side of it is measured by `npm run bench`.)
import { expect, test } from 'vitest';
import { watchOpenHandles } from '../../bench/page/open-handles';
import { sleep, start } from './helpers';

test('50 create → record → flush → shutdown cycles leave nothing open', async () => {
  const openNow = watchOpenHandles(); // from here on, what is opened is counted
  // posthog-js's one instance per page (6-transport.ts) keeps its own listeners and a timer: load it first.
  const warm = start();
  warm.a.record('settings-opened');
  await warm.a.flush();
  await warm.a.shutdown();
  const before = openNow();
  for (let i = 0; i < 50; i++) {
    const { a } = start({ flushIntervalMs: 60_000 });
    a.record('settings-opened');
    if (i % 10 === 0) await a.flush(); // some deliver (posthog-js loads once), some only queue
    await a.shutdown();
  }
  await sleep(100);
  expect(openNow()).toEqual(before);
});

test('control: the counter does see what an instance holds while it runs', async () => {
  const openNow = watchOpenHandles();
  const before = openNow();
  const { a } = start();
  await a.ready;
  const running = openNow();
  expect(running.channels).toBeGreaterThan(before.channels);
  expect(running.databases).toBeGreaterThan(before.databases);
  expect(running.listeners).toBeGreaterThan(before.listeners);
  await a.shutdown();
});
