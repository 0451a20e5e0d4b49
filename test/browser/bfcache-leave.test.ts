// A page back from the back/forward cache reads the stored choice again before it sends (it may
// have missed other tabs' messages while frozen): what the host records in that moment is held.
// If the page leaves again at once, what it held is journaled too, stamped with what the page last
// read (the add rule refuses it if that changed meanwhile). (Found attacking the second
// generation: lost 6/6. Back/forward cache transitions are dispatched as other tests here do: the
// cache cannot be had in this headless browser. The final navigation is real.)
import { expect, test } from 'vitest';
import { appPages, configOf, evalIn, newKey, received, resetStorage, sleep, waitFor } from './helpers';

const { app, close } = appPages();
const ROUNDS = 6;

test.each([
  ['leaves at once (a real navigation, ~30 ms later)', 0],
  ['control: leaves 500 ms later', 500],
])('restored, records 2, %s: all arrive, every round', async (_name, wait) => {
  const results: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await resetStorage();
    const key = newKey('bfcache_leave');
    const l = await app(key, '&toggle=0');
    await evalIn(l, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); })`);
    await waitFor(() => received(key), (r) => r.events.length === 1, 15_000);
    const p = await app(key, '&toggle=0');
    await waitFor(() => configOf(p), (c) => c.reason === 'default' && !c.delivery.delivering);
    await evalIn(
      p,
      `(() => {
        analytics.record('help-button-clicked');
        dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true })); // into the back/forward cache
        setTimeout(() => {
          dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true })); // back
          for (let i = 0; i < 2; i++) analytics.record('load_data_source', { source_type: 'file', started_successfully: true });
          window.__stateAtLeave = null;
          addEventListener('pagehide', () => { localStorage.setItem('attack-state-at-leave', JSON.stringify(analytics.isEnabled())); }, true);
          setTimeout(() => { location.href = 'about:blank'; }, ${wait}); // leaves again
        }, 300);
      })()`,
    );
    await waitFor(() => evalIn(p, 'location.href'), (u) => u === 'about:blank', 10_000).catch(() => undefined);
    await sleep(1000);
    const next = await app(key, '&toggle=0'); // a later visit takes in whatever was kept
    await evalIn(next, 'analytics.ready.then(() => analytics.flush())');
    const count = async () => new Set((await received(key)).events.filter((e) => e.event === 'load_data_source').map((e) => e.raw.uuid)).size;
    const got = await waitFor(count, (n) => n >= 2, 4000).catch(count);
    const audits = [l, next].map((x) => evalIn(x, `analytics.audit().filter((e) => e.name === 'load_data_source').length`));
    results.push(`round ${round}: ${got}/2 arrived; isEnabled() at the final pagehide: ${localStorage.getItem('attack-state-at-leave')}; audit entries for them in other tabs: ${(await Promise.all(audits)).join('+')}`);
    await close(next);
    await close(p);
    await close(l);
  }
  expect(results.map((r) => r.replace(/; isEnabled.*?;/, ';'))).toEqual(results.map((_, i) => `round ${i}: 2/2 arrived; audit entries for them in other tabs: ${results[i]!.match(/other tabs: (.*)$/)![1]}`));
}, 180_000);
