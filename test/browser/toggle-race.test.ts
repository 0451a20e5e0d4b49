// setEnabled(false) then at once setEnabled(true) in tab A while tab B delivers (found by attacking
// the re-read): nothing recorded before the opt-out may reach the endpoint after setEnabled(false)
// resolved. Before the fix, A answered the opt-out's caller at once and B, hearing only "enabled",
// neither aborted nor dropped: B's request arrived up to 2 s after both calls resolved.
import { afterEach, describe, expect, test } from 'vitest';
import { holdStorage, outboxEntries, openApp, pages, received, sleep, start, waitFor } from './helpers';

const opened = new Set<string>();
afterEach(async () => {
  for (const id of [...opened]) await pages.closePage(id).catch(() => undefined);
  opened.clear();
});

/** In page B: capture requests wait `window.__delayCapture` ms before they leave (an abort meanwhile stops them), as over a slow link. */
const SLOW_LINK = `(() => {
  const real = window.fetch;
  window.__held = 0;
  window.fetch = function (input, init) {
    const url = String((input && input.url) || input);
    const ms = window.__delayCapture || 0;
    if (!ms || !/\\/(batch|e|capture|track)\\//.test(url)) return real.apply(this, arguments);
    window.__held++;
    const signal = init && init.signal;
    return new Promise((res, rej) => {
      const t = setTimeout(() => (signal && signal.aborted ? rej(new DOMException('aborted', 'AbortError')) : real.call(window, input, init).then(res, rej)), ms);
      if (signal) signal.addEventListener('abort', () => (clearTimeout(t), (window.__aborted = (window.__aborted || 0) + 1), rej(new DOMException('aborted', 'AbortError'))));
    });
  };
})();`;

const evalIn = (page: string, js: string) => pages.pageEval(page, js);

async function setup(extra = '') {
  const key = `phc_test_tog_${Math.random().toString(36).slice(2)}`;
  const b = await openApp(key, `&toggle=0${extra}`, SLOW_LINK);
  opened.add(b);
  await evalIn(b, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); })`);
  await waitFor(() => received(key), (r) => r.events.length >= 1, 15_000);
  await waitFor(() => evalIn(b, 'analytics.config()') as Promise<{ delivery: { delivering: boolean; transport: string } }>, (c) => c.delivery.delivering && c.delivery.transport === 'ready');
  const { a } = start({ projectKey: key });
  await a.config();
  await evalIn(b, `globalThis.reasons = []; analytics.subscribe((s) => reasons.push(s.reason)); 0`);
  return { key, b, a };
}

const after = async (key: string, t: number) => (await received(key)).events.filter((e) => e.at > t && e.event === 'help-button-clicked').map((e) => `+${e.at - t} ms`);

describe('an opt-out replaced at once by an opt-in while another tab has a request in flight', () => {
  test.each([
    ['control: setEnabled(false) alone', false, 2500],
    ['setEnabled(false); setEnabled(true)', true, 2500],
    ['setEnabled(false); setEnabled(true), B\'s request held 5 s (longer than the 3 s an opt-out waits)', true, 5000],
  ])('%s', async (_name, toggle, delay) => {
    const { key, b, a } = await setup();
    expect((await a.config()).delivery.delivering).toBe(false);
    await evalIn(b, `window.__delayCapture = ${delay}; for (let i = 0; i < 3; i++) analytics.record('help-button-clicked'); void analytics.flush(); 0`);
    await waitFor(() => evalIn(b, 'window.__held') as Promise<number>, (n) => n >= 1, 10_000);
    let tOff: number;
    if (toggle) {
      const off = a.setEnabled(false);
      const on = a.setEnabled(true);
      await off;
      tOff = Date.now();
      await on;
    } else {
      await a.setEnabled(false);
      tOff = Date.now();
    }
    await sleep(delay + 1500);
    const late = await after(key, tOff);
    expect(late, 'recorded before the opt-out, arrived after setEnabled(false) resolved').toEqual([]);
  }, 60_000);

  test.each([[false], [true]])('B lists before A\'s change is stored (storage busy); toggle back on at once: %s', async (toggle) => {
    const { key, b, a } = await setup('&flush=60000');
    await evalIn(b, `for (let i = 0; i < 3; i++) analytics.record('help-button-clicked'); 0`);
    await waitFor(() => outboxEntries(), (x) => x.filter((e) => e.name === 'help-button-clicked').length >= 3, 10_000);
    const release = await holdStorage();
    await evalIn(b, `void analytics.flush(); 0`); // B's list waits behind the block
    await sleep(300);
    let resolvedAt = 0;
    const off = a.setEnabled(false).then(() => void (resolvedAt = Date.now()));
    const on = toggle ? a.setEnabled(true) : Promise.resolve();
    await sleep(200);
    await release();
    await on;
    await off;
    const tOff2 = resolvedAt;
    await sleep(3000);
    const late = await after(key, tOff2);
    expect(late, 'recorded before the opt-out, left after setEnabled(false) resolved').toEqual([]);
  }, 60_000);

  test('liveness: B says loading after the toggle elsewhere, then delivers again', async () => {
    const { key, b, a } = await setup();
    const off = a.setEnabled(false);
    const on = a.setEnabled(true);
    await Promise.all([off, on]);
    await waitFor(() => evalIn(b, 'reasons') as Promise<string[]>, (r) => r.includes('loading'), 5000).catch(() => undefined);
    const before = (await received(key)).events.length;
    await evalIn(b, `analytics.record('help-button-clicked'); analytics.flush()`);
    await waitFor(() => received(key), (r) => r.events.length > before, 10_000);
    const c = (await evalIn(b, 'analytics.config()')) as { enabled: boolean; reason: string; delivery: { delivering: boolean } };
    expect(c.enabled).toBe(true);
  }, 60_000);
});
