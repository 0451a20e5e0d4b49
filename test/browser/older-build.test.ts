// Mixed builds during a deploy: a tab of the previous build (test/fixtures/older/: storage
// versions 2 and 3) still open beside ours (version 4). It opens our database through its
// fallback and works on its own outbox store, under its own lock name: its eviction and its lock
// cannot touch what we wait to send, our tabs deliver meanwhile, and what it left is taken in.
// The id and the cut are shared, so consent holds across builds: its opt-out stops ours, and ends
// what we recorded before it.
import { describe, expect, test } from 'vitest';
import { appPages, configOf, evalIn, failNext, newKey, outboxEntries, received, sinkUrl, sleep, waitFor } from './helpers';

const { app, open } = appPages();

const older = async (key: string, build: string) => {
  const id = await open(`/test/fixtures/older.html?build=${build}&key=${key}&sink=${encodeURIComponent(sinkUrl)}`);
  await waitFor(() => evalIn(id, 'typeof analytics'), (t) => t === 'object');
  await evalIn(id, 'analytics.ready');
  return id;
};
const named = async (key: string, name: string) => new Set((await received(key)).events.filter((e) => e.event === name).map((e) => String(e.raw.uuid)));

describe.each(['v2', 'v3'])('a tab of the previous build (%s) open beside ours', (build) => {
  test('its eviction and its lock cannot touch ours: its 1010 events overflow only its own store, ours all arrive, and it takes no lock of ours', async () => {
    const key = newKey(`older_${build}`);
    await failNext(key, 'count=1000&status=503'); // the endpoint fails for now: everything waits
    const old = await older(key, build); // first: it holds its lock
    await evalIn(old, `(async () => { for (let i = 0; i < 1010; i++) { analytics.record('help-button-clicked'); if (i % 100 === 99) await new Promise((r) => setTimeout(r, 0)); } await analytics.flush(); })()`);
    const ours = await app(key, '&toggle=0&flush=100');
    await evalIn(ours, `analytics.ready.then(() => { for (let i = 0; i < 60; i++) analytics.record('settings-opened'); return analytics.flush(); })`);
    const sessionId = (await configOf(ours)).sessionId;
    await sleep(1500);
    expect((await outboxEntries()).filter((e) => e.sessionId === sessionId), 'ours, still waiting').toHaveLength(60);
    expect((await configOf(ours)).delivery.delivering, 'ours delivers: its lock is not the older build\'s').toBe(true);
    await failNext(key, 'count=0'); // the endpoint works again
    await evalIn(ours, `dispatchEvent(new Event('online'))`); // now, not at the next backoff
    const got = await waitFor(() => named(key, 'settings-opened'), (s) => s.size >= 60, 20_000).catch(() => named(key, 'settings-opened'));
    expect(got.size, 'ours that arrived').toBe(60);
  }, 60_000);

  test('its opt-out stops ours: what we recorded before it never arrives, not even after our opt-in', async () => {
    const key = newKey(`older_off_${build}`);
    const old = await older(key, build);
    const ours = await app(key, '&toggle=0&flush=60000');
    await evalIn(ours, `analytics.ready.then(() => { for (let i = 0; i < 5; i++) analytics.record('settings-opened'); })`);
    await waitFor(() => configOf(ours), (c) => c.delivery.pending === 5);
    await evalIn(old, 'analytics.setEnabled(false)');
    await waitFor(() => configOf(ours), (c) => c.reason === 'user-opted-out', 10_000);
    await evalIn(ours, 'analytics.setEnabled(true).then(() => analytics.flush())');
    await sleep(1500);
    await evalIn(ours, 'analytics.flush()');
    expect((await named(key, 'settings-opened')).size, 'recorded before the older tab\'s opt-out').toBe(0);
  }, 30_000);
});
