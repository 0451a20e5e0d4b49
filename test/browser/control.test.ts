// Control and transparency: devtools, the settings toggle, every tab at once, privacy signals,
// automation and dev builds, embedder policy — each decided by the one gate, each with a reason.
import { describe, expect, test, vi } from 'vitest';
import { page, userEvent } from 'vitest/browser';
import { decide, type ConsentFacts } from '../../src/3-consent-gate';
import { defineAnalyticsToggle, REASON_TEXT, type Analytics } from '../../src';
import { INIT, arrived, exercise, openApp, pages, received, sleep, start, waitFor } from './helpers';

const now = `(performance.timeOrigin + performance.now())`;

describe('devtools', () => {
  test('the global (name configurable) gives every devtools call', async () => {
    const { a } = start({ globalName: 'myAnalytics' });
    const g = (globalThis as Record<string, unknown>).myAnalytics as Analytics & Record<string, unknown>;
    expect(g).toBe(a);
    for (const fn of ['config', 'audit', 'details', 'enable', 'disable', 'clear', 'setMetadata', 'printAudit']) expect(typeof g[fn], fn).toBe('function');
    await g.disable();
    expect(a.isEnabled()).toBe(false);
    await g.enable();
    expect((await g.config()).reason).toBe('user-opted-in');
    await g.setMetadata({ team: 'vision' });
    await g.clear();
    expect((await g.config()).metadata).toEqual({});
  });

  test('a second instance taking over the devtools global says so, once, in the console', async () => {
    const key = `phc_takeover_${Math.random().toString(36).slice(2)}`;
    const p = await openApp(key);
    const same = await pages.pageEval(p, `(() => {
      const first = globalThis.rerunAnalytics;
      const b = rerun.createAnalytics({ projectKey: 'phc_b', apiHost: location.origin });
      const c = rerun.createAnalytics({ projectKey: 'phc_c', apiHost: location.origin });
      return [first === analytics, globalThis.rerunAnalytics === c];
    })()`);
    const told = (await pages.pageConsole(p)).filter((l) => l.includes('is now the newest instance'));
    await pages.closePage(p);
    expect(same).toEqual([true, true]);
    expect(told).toEqual(['info: re-analytics-web: globalThis.rerunAnalytics is now the newest instance; the earlier one still runs.']);
  });

  test('globalName: false installs nothing', async () => {
    const before = Object.keys(globalThis).length;
    start({ globalName: false });
    expect(Object.keys(globalThis).length).toBe(before);
    expect((globalThis as Record<string, unknown>).rerunAnalytics).toBeUndefined();
  });

  test('printAudit() prints the audit as a table', async () => {
    const { a } = start();
    const table = vi.spyOn(console, 'table').mockImplementation(() => undefined);
    try {
      a.record('nope');
      a.printAudit();
      expect(table).toHaveBeenCalledWith([expect.objectContaining({ event: 'nope', outcome: 'dropped', reason: expect.stringMatching(/unknown event/) })]);
    } finally {
      table.mockRestore();
    }
  });

  test('details() says what is collected and why, what never is, how to opt out and audit', () => {
    const { a } = start({ globalName: 'myAnalytics' });
    const text = a.details();
    for (const phrase of ['What this viewer collects, and why', 'Never collected', 'Opt out', 'myAnalytics.disable()', 'myAnalytics.audit()', 'Global Privacy Control', 'viewer_started:']) {
      expect(text).toContain(phrase);
    }
  });
});

describe('settings toggle element', () => {
  test('clicked like a person; follows changes made in another tab and in devtools', async () => {
    defineAnalyticsToggle();
    const { a, key } = start();
    const el = document.createElement('rerun-analytics-toggle') as HTMLElement & { analytics?: Analytics };
    el.analytics = a;
    document.body.append(el);
    try {
      const box = page.getByRole('checkbox', { name: 'Send anonymous usage data' });
      await expect.element(box).toBeChecked();
      await expect.element(page.getByText(REASON_TEXT.default)).toBeVisible();

      await userEvent.click(box); // a real click, through Playwright
      await expect.element(box).not.toBeChecked();
      await expect.element(page.getByText(REASON_TEXT['user-opted-out'])).toBeVisible();
      expect(await a.config()).toMatchObject({ enabled: false, reason: 'user-opted-out' });

      const other = await openApp(key);
      await pages.pageEval(other, 'analytics.ready.then(() => analytics.enable())'); // another tab
      await expect.element(box).toBeChecked();
      await expect.element(page.getByText(REASON_TEXT['user-opted-in'])).toBeVisible();
      await pages.closePage(other);

      await (globalThis as unknown as { rerunAnalytics?: Analytics }).rerunAnalytics?.disable(); // none here (globalName false)…
      await a.disable(); // …so as devtools would, on the instance
      await expect.element(box).not.toBeChecked();
      expect(box.element().getAttribute('aria-describedby')).toBeTruthy();
    } finally {
      el.remove();
    }
  });
});

describe('the toggle in any order', () => {
  type Toggle = HTMLElement & { analytics?: Bindable };
  type Bindable = Pick<Analytics, 'ready' | 'isEnabled' | 'setEnabled' | 'subscribe' | 'config'>;
  const reasonOf = (el: HTMLElement) => waitFor(() => el.dataset.reason, (r) => r !== undefined && r !== 'loading', 10_000);
  /** `a`, counting its live subscriptions: a toggle that let go of it has none. */
  const counted = (a: Analytics) => {
    const c = { live: 0, ready: a.ready, isEnabled: () => a.isEnabled(), setEnabled: (on: boolean) => a.setEnabled(on), config: () => a.config() } as Bindable & { live: number };
    c.subscribe = (listener) => {
      c.live++;
      const off = a.subscribe(listener);
      return () => (c.live--, off());
    };
    return c;
  };
  const toggle = (tag = 'rerun-analytics-toggle', global?: string) => {
    const el = document.createElement(tag) as Toggle;
    if (global) el.setAttribute('global', global);
    return el;
  };

  test('connected before createAnalytics(): it shows "loading", then the instance\'s state once the global is set', async () => {
    defineAnalyticsToggle();
    const el = toggle('rerun-analytics-toggle', 'lateGlobal');
    document.body.append(el);
    try {
      await waitFor(() => el.dataset.reason, (r) => r === 'loading');
      expect(el.querySelector('input')!.disabled).toBe(true);
      start({ globalName: 'lateGlobal' });
      expect(await reasonOf(el)).toBe('default');
      expect(el.querySelector('input')!.checked).toBe(true);
      expect(el.querySelector('small')!.textContent).toBe(REASON_TEXT.default);
    } finally {
      el.remove();
    }
  });

  test('bound after it was connected, and bound before the element was defined', async () => {
    defineAnalyticsToggle();
    const { a } = start();
    const after = toggle('rerun-analytics-toggle', 'noSuchGlobal');
    document.body.append(after);
    const before = toggle('late-defined-toggle');
    before.analytics = a; // an own property, set before the class exists
    document.body.append(before);
    try {
      after.analytics = a;
      expect(await reasonOf(after)).toBe('default');
      defineAnalyticsToggle('late-defined-toggle');
      expect(await reasonOf(before)).toBe('default');
      expect(before.analytics).toBe(a);
    } finally {
      after.remove();
      before.remove();
    }
  });

  test('re-binds when analytics changes; lets go of the instance when re-bound and when disconnected', async () => {
    defineAnalyticsToggle();
    const a = counted(start().a);
    const b = counted(start({ embedderPolicy: 'off' }).a);
    const el = toggle();
    el.analytics = a;
    document.body.append(el);
    try {
      expect(await reasonOf(el)).toBe('default');
      expect(a.live).toBe(1);
      el.analytics = b;
      expect(await waitFor(() => el.dataset.reason, (r) => r === 'embedder-policy')).toBe('embedder-policy');
      expect([a.live, b.live], 'subscriptions after the re-bind').toEqual([0, 1]);
      expect(el.querySelector('input')!.disabled).toBe(true);
      el.remove();
      expect(b.live, 'after disconnect').toBe(0);
      document.body.append(el); // connected again: bound again
      await waitFor(() => b.live, (n) => n === 1);
    } finally {
      el.remove();
    }
    expect(b.live).toBe(0);
  });
});

describe('the toggle follows the global (found by a review)', () => {
  test('bound by the global: when a new instance takes it over (the old one shut down), the toggle shows and drives the new one', async () => {
    defineAnalyticsToggle();
    const { a } = start({ globalName: 'takenOver' });
    const el = document.createElement('rerun-analytics-toggle');
    el.setAttribute('global', 'takenOver');
    document.body.append(el);
    try {
      await waitFor(() => el.dataset.reason, (r) => r === 'default');
      await a.disable();
      await waitFor(() => el.dataset.reason, (r) => r === 'user-opted-out');
      await a.shutdown();
      const { a: b } = start({ globalName: 'takenOver' });
      await b.ready;
      await waitFor(() => el.dataset.reason, (r) => r === 'user-opted-out'); // b read the stored choice
      await userEvent.click(page.getByRole('checkbox', { name: 'Send anonymous usage data' }));
      await waitFor(() => b.isEnabled(), (on) => on === true); // the click reached b, not the shut-down a
      expect(el.dataset.reason).toBe('user-opted-in');
    } finally {
      el.remove();
    }
  });

  test('changing the global attribute re-binds', async () => {
    defineAnalyticsToggle();
    start({ globalName: 'policyOffGlobal', embedderPolicy: 'off' });
    start({ globalName: 'plainGlobal' });
    const el = document.createElement('rerun-analytics-toggle');
    el.setAttribute('global', 'policyOffGlobal');
    document.body.append(el);
    try {
      await waitFor(() => el.dataset.reason, (r) => r === 'embedder-policy');
      el.setAttribute('global', 'plainGlobal');
      await waitFor(() => el.dataset.reason, (r) => r === 'default');
    } finally {
      el.remove();
    }
  });
});

describe('every tab at once', () => {
  test('an opt-out in one tab applies in another and discards its pending events (the latency is measured by npm run bench)', async () => {
    const keyA = `phc_tabA_${Date.now()}`;
    const keyB = `phc_tabB_${Date.now()}`;
    const A = await openApp(keyA);
    const B = await openApp(keyB, '&flush=10000');
    await pages.pageEval(B, `analytics.ready.then(() => {
      globalThis.changes = [];
      analytics.subscribe((s) => changes.push({ ...s, at: ${now} }));
      for (let i = 0; i < 3; i++) analytics.record('settings-opened'); // pending for 10 s
    })`);
    const t0 = (await pages.pageEval(A, `(async () => { await analytics.ready; const t = ${now}; await analytics.disable(); return t; })()`)) as number;
    const changes = (await waitFor(() => pages.pageEval(B, 'changes'), (c) => (c as unknown[]).length > 0)) as { enabled: boolean; reason: string; at: number }[];
    const latency = changes[0]!.at - t0;
    console.info(`cross-tab opt-out applied after ${latency.toFixed(1)} ms`);
    expect(changes[0]).toMatchObject({ enabled: false, reason: 'user-opted-out' });
    const audit = (await pages.pageEval(B, 'analytics.audit()')) as { reason: string }[];
    expect(audit.map((e) => e.reason)).toEqual(['user-opted-out', 'user-opted-out', 'user-opted-out']);
    await pages.pageEval(B, 'analytics.flush()');
    await sleep(100);
    expect((await received(keyB)).requests).toHaveLength(0);

    // Opt back in from B: A follows, from storage.
    await pages.pageEval(A, `globalThis.onAt = null; analytics.subscribe((s) => { if (s.enabled && onAt === null) onAt = ${now}; })`);
    const t1 = (await pages.pageEval(B, `(async () => { const t = ${now}; await analytics.enable(); return t; })()`)) as number;
    const onAt = (await waitFor(() => pages.pageEval(A, 'globalThis.onAt'), (v) => typeof v === 'number', 10_000)) as number; // a generous bound: a busy machine
    const onLatency = onAt - t1;
    console.info(`cross-tab opt-in applied after ${onLatency.toFixed(1)} ms`);
    expect(await pages.pageEval(A, 'analytics.config().then((c) => c.reason)')).toBe('user-opted-in');

    // clear() in A: B adopts the new id and drops what it recorded under the old one.
    await pages.pageEval(B, `analytics.record('help-button-clicked')`);
    const newId = await pages.pageEval(A, `analytics.clear().then(() => analytics.config()).then((c) => c.analyticsId)`);
    await waitFor(() => pages.pageEval(B, 'analytics.config().then((c) => c.analyticsId)'), (id) => id === newId, 10_000);
    expect(((await pages.pageEval(B, 'analytics.audit()')) as { reason: string }[]).at(-1)!.reason).toBe('cleared');
    await pages.closePage(A);
    await pages.closePage(B);
  });

  test('clear() then record() in the same task: the event comes after the clear — sent under the new id, not dropped as "cleared"', async () => {
    const { a, key } = start();
    await a.ready;
    a.record('settings-opened');
    void a.clear();
    a.record('help-button-clicked');
    await a.flush();
    const audit = a.audit().filter((e) => e.name === 'help-button-clicked');
    expect(audit.map((e) => e.outcome)).toEqual(['sent']);
    expect(a.audit().find((e) => e.name === 'settings-opened')?.reason).toBe('cleared');
    const got = await waitFor(() => received(key), (r) => r.events.some((e) => e.event === 'help-button-clicked'), 10_000);
    expect(got.events.find((e) => e.event === 'help-button-clicked')?.properties.distinct_id).toBe((await a.config()).analyticsId);
  });

  test('a message on the channel alone cannot turn a tab on: storage decides', async () => {
    const { a } = start();
    await a.disable();
    const rogue = new BroadcastChannel('rerun-analytics');
    rogue.postMessage({ change: 'choice', choice: 'enabled' });
    rogue.close();
    await sleep(150);
    expect(a.isEnabled()).toBe(false);
  });
});

describe('off paths: zero requests, no transport fetch, and the toggle says why', () => {
  test.each([
    ['Global Privacy Control', '', INIT.gpc, 'privacy-signal', false],
    ['Do Not Track', '', INIT.dnt, 'privacy-signal', false],
    ['automation without force', '&force=0', undefined, 'automation', true],
    ['a dev build without force (in a person\'s browser)', '&dev=1&force=0', INIT.human, 'dev-build', true],
    ['control: a dev build with force is on', '&dev=1', undefined, 'default', false],
    ['control: a person\'s browser, nothing forbids it, no force', '&force=0', INIT.human, 'default', false],
    ['the embedder meta tag', '&meta=off', undefined, 'embedder-policy', true],
    ['the embedderPolicy option', '&policy=off', undefined, 'embedder-policy', true],
    ['storage that cannot be read', '', INIT.noIndexedDB, 'storage-unavailable', true],
  ])('%s', async (_what, params, init, reason, locked) => {
    const key = `phc_off_${Math.random().toString(36).slice(2)}`;
    const p = await openApp(key, params, init);
    const result = await exercise(p);
    await pages.closePage(p);
    const on = reason === 'default';
    expect(result.state).toEqual([on, reason]);
    expect(result.toggle).toMatchObject({ reason, checked: on, disabled: locked, text: REASON_TEXT[reason as keyof typeof REASON_TEXT] });
    if (on) {
      expect(result.transportFetched).toBe(true); // the control: this detector does see a fetch
      await arrived(key, 2);
    } else {
      expect(result.transportFetched).toBe(false);
      expect((await received(key)).requests).toHaveLength(0);
    }
  });
});

describe('privacy signals', () => {
  test('GPC turns it off; an explicit enable (a click on the toggle) wins, is stored, survives a reload', async () => {
    const key = `phc_gpc_${Date.now()}`;
    const p = await openApp(key, '', INIT.gpc);
    expect((await exercise(p)).state).toEqual([false, 'privacy-signal']);
    await pages.pageClickCheckbox(p, 'Send anonymous usage data');
    await waitFor(() => pages.pageEval(p, 'analytics.config().then((c) => c.reason)'), (r) => r === 'user-opted-in');
    await pages.pageEval(p, `analytics.record('settings-opened')`);
    await arrived(key, 1);
    await pages.pageReload(p);
    expect(await pages.pageEval(p, 'navigator.globalPrivacyControl')).toBe(true);
    expect(await pages.pageEval(p, 'analytics.ready.then(() => analytics.config()).then((c) => [c.enabled, c.reason])')).toEqual([true, 'user-opted-in']);
    await pages.closePage(p);
  });

  test('respectPrivacySignals: false ignores GPC', async () => {
    const key = `phc_gpc_ignored_${Date.now()}`;
    const p = await openApp(key, '&signals=0', INIT.gpc);
    expect((await exercise(p)).state).toEqual([true, 'default']);
    await pages.closePage(p);
    await arrived(key, 2);
  });
});

describe('embedder policy wins over everything', () => {
  test('meta off + a stored opt-in + force: off, and the toggle cannot turn it on', async () => {
    await start().a.setEnabled(true); // the user opted in earlier (same origin storage)
    const key = `phc_meta_${Date.now()}`;
    const p = await openApp(key, '&meta=off');
    const result = await exercise(p);
    expect(result.state).toEqual([false, 'embedder-policy']);
    expect(result.toggle.disabled).toBe(true);
    await pages.pageEval(p, 'analytics.enable()'); // even from devtools
    expect(await pages.pageEval(p, 'analytics.config().then((c) => c.reason)')).toBe('embedder-policy');
    await pages.pageEval(p, `analytics.record('settings-opened'); analytics.flush()`);
    await sleep(150);
    await pages.closePage(p);
    expect((await received(key)).requests).toHaveLength(0);
  });

  test.each([['the option', '&policy=off'], ['the meta tag', '&meta=off']])('policy off by %s: nothing beyond the facade is fetched, until config() asks; then what was recorded is audited as dropped', async (_what, params) => {
    const key = `phc_policy_${Math.random().toString(36).slice(2)}`;
    const p = await openApp(key, `${params}&toggle=0`);
    const stages = async () => (await pages.pageRequests(p)).filter((u) => /\/src\/(core\.ts|core\/(?!names)|store|6-transport)|posthog/.test(u));
    const early = await pages.pageEval(p, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); }).then(() => analytics.isEnabled())`);
    await sleep(300);
    const before = await stages();
    const reason = await pages.pageEval(p, 'analytics.config().then((c) => c.reason)');
    const audit = (await pages.pageEval(p, 'analytics.audit()')) as { name: string; outcome: string; reason?: string }[];
    const after = await stages();
    await pages.closePage(p);
    expect(early).toBe(false);
    expect(before, 'fetched before anything asked').toEqual([]);
    expect(after.length, 'config() fetched the stages (the detector sees them)').toBeGreaterThan(0);
    expect(reason).toBe('embedder-policy');
    expect(audit).toContainEqual(expect.objectContaining({ name: 'settings-opened', outcome: 'dropped', reason: 'embedder-policy' }));
    expect((await received(key)).requests).toHaveLength(0);
  });
});

describe('the gate: precedence', () => {
  const base: ConsentFacts = { stored: 'unset', embedderForbids: false, privacySignal: false, automation: false, devBuild: false, force: false };
  test.each<[Partial<ConsentFacts>, boolean, string]>([
    [{}, true, 'default'],
    [{ embedderForbids: true, stored: 'enabled', force: true }, false, 'embedder-policy'],
    [{ embedderForbids: true, stored: 'unreadable' }, false, 'embedder-policy'],
    [{ stored: 'unreadable', force: true }, false, 'storage-unavailable'],
    [{ stored: 'loading', force: true }, false, 'loading'],
    [{ stored: 'disabled', force: true }, false, 'user-opted-out'],
    [{ stored: 'disabled', automation: true }, false, 'user-opted-out'],
    [{ stored: 'enabled', automation: true }, false, 'automation'],
    [{ stored: 'enabled', automation: true, force: true }, true, 'user-opted-in'],
    [{ devBuild: true }, false, 'dev-build'],
    [{ devBuild: true, force: true }, true, 'default'],
    [{ stored: 'enabled', privacySignal: true }, true, 'user-opted-in'],
    [{ privacySignal: true }, false, 'privacy-signal'],
    [{ privacySignal: true, force: true }, false, 'privacy-signal'],
    [{ stored: 'enabled' }, true, 'user-opted-in'],
  ])('%o → %s (%s)', (facts, enabled, reason) => {
    expect(decide({ ...base, ...facts })).toEqual({ enabled, reason });
  });
});
