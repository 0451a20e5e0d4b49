// A page that closes without having heard another tab's opt-out or clear() (its main thread was
// busy when it was stored and announced: here, the page embedding the viewer's iframe). A request
// made as it closes would carry events recorded before it, and nothing could stop it: a closing
// page makes none (it journals what it holds). (Found attacking the second generation: 3/3.)
import { expect, test } from 'vitest';
import { appPages, configOf, evalIn, newKey, received, resetStorage, sleep, waitFor } from './helpers';

const { app, close, frame } = appPages();

const ROUNDS = 3;
const BUSY_MS = 2500;

const inFrame = (host: string, js: string) => evalIn(host, `(() => { const analytics = document.getElementById('viewer').contentWindow.analytics; return ${js}; })()`);

test.each([
  ['setEnabled(false)', 'analytics.setEnabled(false)'],
  ['clear()', 'analytics.clear()'],
])('another tab\'s %s resolves while the embedding page is busy; the page then removes the viewer\'s iframe: nothing recorded before arrives after it resolved', async (_name, call) => {
  const results: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await resetStorage(); // the choice is the origin's: each round starts as a first visit
    const key = newKey('closing_unheard');
    const host = await frame(key, false);
    // The framed instance delivers (the first of its key), posthog-js loaded.
    await inFrame(host, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); })`);
    await waitFor(() => received(key), (r) => r.events.length === 1, 15_000).catch(async (e) => {
      throw new Error(`${e}; frame: ${JSON.stringify(await inFrame(host, 'analytics.config()'))} audit ${JSON.stringify(await inFrame(host, 'analytics.audit()'))}`);
    });
    await waitFor(() => inFrame(host, 'analytics.config()') as Promise<{ delivery: { delivering: boolean; transport: string } }>, (c) => c.delivery.delivering && c.delivery.transport === 'ready');
    const q = await app(key, '&toggle=0');
    await waitFor(() => configOf(q), (c) => c.reason === 'default' && !c.delivery.delivering);

    // In 200 ms: the viewer records 3 events, the host is busy for BUSY_MS, then removes the iframe (its pagehide).
    await evalIn(
      host,
      `setTimeout(() => {
        const w = document.getElementById('viewer').contentWindow;
        for (let i = 0; i < 3; i++) w.analytics.record('help-button-clicked');
        window.__recordedAt = Date.now();
        const end = performance.now() + ${BUSY_MS};
        while (performance.now() < end) {}
        document.getElementById('viewer').remove();
        window.__removedAt = Date.now();
      }, 200); 0`,
    );
    await sleep(700);
    const offAt = (await evalIn(q, `${call}.then(() => Date.now())`)) as number;
    const removedAt = (await waitFor(() => evalIn(host, 'window.__removedAt ?? 0') as Promise<number>, (t) => t > 0, 15_000)) as number;
    const recordedAt = (await evalIn(host, 'window.__recordedAt')) as number;
    await sleep(2000);
    const late = (await received(key)).events.filter((e) => e.event === 'help-button-clicked' && e.at > offAt).map((e) => `+${e.at - offAt} ms`);
    await close(q);
    await close(host);
    results.push(`round ${round}: recorded ${recordedAt - offAt} ms vs resolved; removed +${removedAt - offAt} ms; late arrivals: [${late.join(', ')}]`);
  }
  // Precondition: each round recorded before the opt-out resolved and removed the frame after it.
  expect(results.every((r) => /recorded -\d+ ms/.test(r) && /removed \+\d+ ms/.test(r)), results.join('\n')).toBe(true);
  expect(results, 'recorded before the opt-out/clear, arrived after it resolved').toEqual(results.map((r) => r.replace(/late arrivals: \[.*\]$/, 'late arrivals: []')));
}, 120_000);
