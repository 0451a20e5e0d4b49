// Leaving the page: what the last task records survives its page. A tab that navigates away right
// after recording — the one that follows, a tab alone before posthog-js has loaded, two tabs at
// once — loses nothing: the events leave as the page goes, or wait (the journal) for the
// delivering tab or the next visit. Each loss was a race (a write issued in pagehide dies with the
// page when the navigation commits first), so each test runs rounds, and every round must keep
// them all. A closing page makes no request of its own: what it holds waits for a tab that can
// still ask the gate.
import { describe, expect, test } from 'vitest';
import type { RouteSpec } from '../page-commands';
import { appPages, configOf, evalIn, newKey, pages, received, resetStorage, sinkUrl, waitFor } from './helpers';

const { app, close } = appPages();

/**
 * Where the leaving tab goes: a page that commits at once (about:blank; a page from the cache, or
 * the back button, does the same), so that the navigation lands while the write issued for the
 * events just recorded is still under way. (A page of the server commits ~30 ms later, after it.)
 */
const ELSEWHERE = 'about:blank';
/** posthog-js's chunk never answers: the transport cannot have loaded when the page leaves. */
const NO_TRANSPORT: RouteSpec[] = [{ pattern: '**/*posthog-js*', action: 'hang' }];
const ROUNDS = 6;
/** Where the navigation lands relative to the module's write varies by a few ms: rounds vary the delay. */
const DELAYS = [-1, 1, 0, 2, -1, 3];

const arrivedNamed = async (key: string, name: string) => new Set((await received(key)).events.filter((e) => e.event === name).map((e) => String(e.raw.uuid)));

/** In `page`, on a message of the test's own: record `n` events, then navigate away in the same task (delay < 0) or `delay` ms later. */
const armLeave = (page: string, n: number, name: string, delay: number) =>
  evalIn(
    page,
    `analytics.ready.then(() => {
      const go = new BroadcastChannel('leaving-go');
      go.onmessage = () => {
        for (let i = 0; i < ${n}; i++) analytics.record(${JSON.stringify(name)});
        const leave = () => { location.href = ${JSON.stringify(ELSEWHERE)}; };
        if (${delay} < 0) leave(); else setTimeout(leave, ${delay});
      };
    })`,
  );
const go = () => {
  const c = new BroadcastChannel('leaving-go');
  c.postMessage('go');
  c.close();
};
const left = (page: string) => waitFor(() => pages.pageUrl(page), (u) => u === ELSEWHERE, 10_000);
/**
 * Runs `round` ROUNDS times (storage reset before each), until one loses events: each returns what
 * arrived and what all of it is; every round must have it all.
 */
async function inRounds(what: string, round: (i: number, key: string) => Promise<[number, number]>): Promise<void> {
  const results: string[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await resetStorage();
    const [got, all] = await round(i, newKey(what));
    results.push(`round ${i}: ${got}/${all} arrived`);
    if (got < all) break;
  }
  expect(results, 'rounds (stopped at the first that lost events)').toEqual(Array.from({ length: ROUNDS }, (_, i) => expect.stringMatching(new RegExp(`^round ${i}: (\\d+)/\\1 arrived`))));
}
const arrivedCount = (key: string, names: string[], n: number) => {
  const count = async () => (await Promise.all(names.map((name) => arrivedNamed(key, name)))).reduce((sum, s) => sum + s.size, 0);
  return waitFor(count, (x) => x >= n, 15_000).catch(count);
};

describe('a tab that navigates away right after recording loses nothing', () => {
  test('the tab that follows (the other delivers): its 2 events arrive, every round', () =>
    inRounds('follower_nav', async (i, key) => {
      const leader = await app(key, '&toggle=0');
      await waitFor(() => configOf(leader), (c) => c.delivery.delivering); // it holds the Web Lock
      const follower = await app(key, '&toggle=0');
      await waitFor(() => configOf(follower), (c) => c.reason === 'default' && !c.delivery.delivering);
      await armLeave(follower, 2, 'help-button-clicked', DELAYS[i]!);
      go();
      await left(follower);
      const got = await arrivedCount(key, ['help-button-clicked'], 2);
      await close(follower);
      await close(leader);
      return [got, 2];
    }), 120_000);

  test('a tab alone, before posthog-js has loaded: its 2 events arrive by the next visit, every round', () =>
    inRounds('alone_nav', async (i, key) => {
      const p = await app(key, '&toggle=0', undefined, NO_TRANSPORT);
      await waitFor(() => configOf(p), (c) => c.reason === 'default');
      await armLeave(p, 2, 'help-button-clicked', DELAYS[i]!);
      go();
      await left(p);
      const next = await app(key, '&toggle=0'); // the next visit (posthog-js loads now)
      const got = await arrivedCount(key, ['help-button-clicked'], 2);
      await close(next);
      await close(p);
      return [got, 2];
    }), 120_000);

  test('two tabs at the same moment, before posthog-js has loaded: the 50 each recorded all arrive by the next visit, every round', () =>
    inRounds('two_nav', async (i, key) => {
      const a = await app(key, '&toggle=0', undefined, NO_TRANSPORT);
      const b = await app(key, '&toggle=0', undefined, NO_TRANSPORT);
      await Promise.all([a, b].map((p) => waitFor(() => configOf(p), (c) => c.reason === 'default')));
      await armLeave(a, 50, 'settings-opened', DELAYS[i]!);
      await armLeave(b, 50, 'help-button-clicked', DELAYS[i]!);
      go(); // both at once
      await Promise.all([left(a), left(b)]);
      const next = await app(key, '&toggle=0');
      const got = await arrivedCount(key, ['settings-opened', 'help-button-clicked'], 100);
      for (const p of [next, a, b]) await close(p);
      return [got, 100];
    }), 180_000);
});

/**
 * Logs every capture request the page's fetch is asked for (posthog-js takes `fetch` when it
 * loads, after this runs), and whether the page was leaving. In localStorage, which survives the page.
 */
const FETCH_LOG = `(() => {
  const real = window.fetch;
  addEventListener('pagehide', () => { window.__leaving = true; }, true);
  window.fetch = function (input, init) {
    const url = String((input && input.url) || input);
    if (/\\/e\\//.test(url)) {
      const log = JSON.parse(localStorage.getItem('closing-log') || '[]');
      log.push({ leaving: !!window.__leaving, keepalive: !!(init && init.keepalive) });
      localStorage.setItem('closing-log', JSON.stringify(log));
    }
    return real.apply(this, arguments);
  };
})();`;

test('a closing page makes no request (one made now could not be stopped by an opt-out it has not heard): its 10 events of CJK text (132 KB of UTF-8) are journaled, and arrive with the next visit', async () => {
  const key = newKey('cjk');
  const p = await app(key, '&toggle=0&flush=60000', FETCH_LOG);
  await evalIn(p, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); })`);
  await waitFor(() => received(key), (r) => r.events.length === 1, 10_000); // posthog-js loaded, this tab delivering
  // 4,400 random CJK characters each (3 bytes apiece in UTF-8; random, so gzip cannot shrink them much).
  await evalIn(p, `(() => {
    const cjk = (len) => Array.from(crypto.getRandomValues(new Uint16Array(len)), (v) => String.fromCharCode(0x4e00 + (v % 20000))).join('');
    for (let i = 0; i < 10; i++) analytics.record('load_data_source', { source_type: cjk(4400), started_successfully: true });
  })()`);
  await waitFor(() => evalIn(p, 'analytics.config().then((c) => c.delivery.pending)'), (x) => x === 10, 10_000);
  localStorage.removeItem('closing-log');
  await pages.pageGoto(p, `/test/fixtures/app.html?bare=1&sink=${encodeURIComponent(sinkUrl)}`); // pagehide
  const log = JSON.parse(localStorage.getItem('closing-log') ?? '[]') as { leaving: boolean; keepalive: boolean }[];
  expect(log.filter((x) => x.leaving), 'requests the page made as it left').toEqual([]);
  await app(key, '&toggle=0'); // the next visit
  await waitFor(() => received(key), (r) => r.events.filter((e) => e.event === 'load_data_source').length === 10, 15_000);
}, 40_000);
