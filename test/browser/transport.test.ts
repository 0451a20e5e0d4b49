// posthog-js is fetched only when consent is on: an opted-out user never downloads it.
import { expect, test } from 'vitest';
import { openApp, pages, received, sleep, waitFor } from './helpers';

const isTransportChunk = (url: string) => /posthog/i.test(url);

test('disable → reload: zero requests to the endpoint and no posthog-js chunk fetched', async () => {
  const key = `phc_off_${Date.now()}`;
  const page = await openApp(key);
  await pages.pageEval(page, 'analytics.setEnabled(false)');
  await pages.pageReload(page);
  const before = (await pages.pageRequests(page)).length;
  await pages.pageEval(page, `(async () => {
    await analytics.ready;
    analytics.record('settings-opened');
    analytics.record('help-button-clicked');
    await analytics.flush();
  })()`);
  await sleep(300);
  const state = await pages.pageEval(page, 'analytics.config().then(c => [c.enabled, c.reason])');
  const requests = (await pages.pageRequests(page)).slice(before);
  await pages.closePage(page);
  expect(state).toEqual([false, 'user-opted-out']);
  expect(requests.filter(isTransportChunk)).toEqual([]);
  // Nothing after load but the module's own stages (same origin): no capture, no posthog-js.
  expect(requests.filter((u) => !u.startsWith(location.origin) || /\/e\/|posthog/i.test(u))).toEqual([]);
  expect((await received(key)).requests).toEqual([]);
});

test('control: when enabled, the same page does fetch the posthog-js chunk and deliver', async () => {
  const key = `phc_on_${Date.now()}`;
  const page = await openApp(key);
  const atLoad = (await pages.pageRequests(page)).filter(isTransportChunk);
  await pages.pageEval(page, `analytics.ready.then(() => analytics.record('settings-opened'))`);
  await waitFor(() => received(key), (r) => r.events.length === 1);
  const after = (await pages.pageRequests(page)).filter(isTransportChunk);
  await pages.closePage(page);
  expect(atLoad).toEqual([]); // not in the entry: loaded lazily, on the first flush
  expect(after.length).toBeGreaterThan(0);
});

test('events still waiting when the page goes away are not lost: journaled at pagehide, they arrive with the next visit', async () => {
  const key = `phc_hide_${Date.now()}`;
  const page = await openApp(key, '&flush=60000');
  await pages.pageEval(page, `(async () => {
    await analytics.ready;
    analytics.record('settings-opened');
    await analytics.flush(); // loads the transport
    analytics.record('help-button-clicked'); // would wait a minute
  })()`);
  await waitFor(() => received(key), (r) => r.events.length === 1);
  await pages.pageEval(page, `location.href = 'about:blank'`); // navigate away: pagehide
  const next = await openApp(key); // the next visit
  const events = await waitFor(() => received(key), (r) => r.events.length === 2);
  await pages.closePage(page);
  await pages.closePage(next);
  expect(events.events.map((e) => e.event).sort()).toEqual(['help-button-clicked', 'settings-opened']);
});
