// A 429 ("slow down") holds every request of that project for at least 30 s, from any tab: the
// delivering tab stores the wait with what it removes; a tab that takes over (the first closed,
// or crashed) honours it; a closing page makes no request at all. The scenarios run side by side
// (each its own project key) and watch the same 30 s; the follower's, which opts out and in (the
// origin's choice, shared), after them.
import { expect, test } from 'vitest';
import { appPages, configOf, evalIn, failNext, newKey, pages, received, sinkUrl, sleep, waitFor } from './helpers';

const { app, close } = appPages();

/** The least a 429 holds delivery; 1 s of slack for the two clocks' readings. */
const WAIT_MS = 30_000;
const SLACK_MS = 1000;

/** The tab delivers and posthog-js is loaded: one event sent and received. */
async function warmUp(page: string, key: string) {
  await evalIn(page, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); })`);
  await waitFor(() => received(key), (r) => r.events.length >= 1, 10_000);
  await waitFor(() => configOf(page), (c) => c.delivery.delivering && c.delivery.transport === 'ready');
}

/** In the delivering tab: the endpoint answers 429 to everything of `key`; 2 events flushed (answered 429). When the 429 arrived (the sink's clock). */
async function rateLimited(page: string, key: string): Promise<number> {
  await failNext(key, 'count=100&status=429');
  await evalIn(page, `(async () => { analytics.record('help-button-clicked'); analytics.record('help-button-clicked'); await analytics.flush(); })()`);
  const r = await waitFor(() => received(key), (x) => x.requests.some((q) => q.status === 429), 10_000);
  await waitFor(() => configOf(page), (c) => c.delivery.lastError === 'HTTP 429'); // and its removal told the wait to storage
  await sleep(200);
  return r.requests.find((q) => q.status === 429)!.at;
}

/** Every request of `key` within the 30 s after the 429 (the 429 itself aside), as "+N ms". */
async function tooEarly(key: string, t429: number): Promise<string[]> {
  while (Date.now() < t429 + WAIT_MS) await sleep(500);
  return (await received(key)).requests.filter((q) => q.at > t429 && q.at < t429 + WAIT_MS - SLACK_MS && q.method === 'POST').map((q) => `+${q.at - t429} ms (${q.events} events, answered ${q.status})`);
}

/** Two tabs; the first delivers and gets the 429. */
async function twoTabs(what: string) {
  const key = newKey(what);
  const first = await app(key, '&toggle=0');
  await warmUp(first, key);
  const second = await app(key, '&toggle=0'); // waits in line for the Web Lock
  await waitFor(() => configOf(second), (c) => c.enabled && !c.delivery.delivering);
  return { key, first, second, t429: await rateLimited(first, key) };
}

const closed = async () => {
  const { key, first, t429 } = await twoTabs('429_close');
  await close(first); // then the second tab takes over what waits
  return tooEarly(key, t429);
};
const crashed = async () => {
  const { key, first, second, t429 } = await twoTabs('429_crash');
  await pages.pageCrash(first); // no closing request; the browser lets go of its Web Lock
  await close(first);
  await waitFor(() => configOf(second), (c) => c.delivery.delivering, 10_000);
  return tooEarly(key, t429);
};
const alone = async () => {
  const key = newKey('429_leave');
  const p = await app(key, '&toggle=0');
  await warmUp(p, key);
  const t429 = await rateLimited(p, key);
  await pages.pageGoto(p, `/test/fixtures/app.html?bare=1&sink=${encodeURIComponent(sinkUrl)}`); // pagehide
  return tooEarly(key, t429);
};

/** A tab that delivered once (posthog-js loaded), then follows: when it closes after the other's 429, it sends nothing either. */
const follower = async () => {
  const key = newKey('429_follower');
  const a = await app(key, '&toggle=0');
  await warmUp(a, key);
  const b = await app(key, '&toggle=0');
  await waitFor(() => configOf(b), (c) => c.reason === 'default' && !c.delivery.delivering);
  await evalIn(b, 'analytics.setEnabled(false)'); // A lets the lead go at the opt-out…
  await waitFor(() => configOf(a), (c) => c.reason === 'user-opted-out');
  await evalIn(b, 'analytics.setEnabled(true)'); // …and B, whose opt-in comes first, takes it
  await waitFor(() => configOf(a), (c) => c.reason === 'user-opted-in', 10_000);
  await waitFor(() => configOf(b), (c) => c.delivery.delivering, 10_000);
  const t429 = await rateLimited(b, key);
  await evalIn(a, `addEventListener('pagehide', () => analytics.record('help-button-clicked')); location.href = ${JSON.stringify(`/test/fixtures/app.html?bare=1&sink=${encodeURIComponent(sinkUrl)}`)}; 0`);
  return tooEarly(key, t429);
};

test('after a 429, no request of that project within 30 s: from the tab that takes over when the first is closed, or crashed; nor a closing page, the delivering tab or a follower', async () => {
  const [afterClose, afterCrash, leaving] = await Promise.all([closed(), crashed(), alone()]);
  // After them: its opt-out and opt-in are the origin's, and would move the others' leads.
  const followerLeaving = await follower();
  expect({ afterClose, afterCrash, leaving, followerLeaving }).toEqual({ afterClose: [], afterCrash: [], leaving: [], followerLeaving: [] });
}, 150_000);
