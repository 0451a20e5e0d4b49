// Broken promises found in review (issue 7), each pinned: these failed on the code before.
import { describe, expect, test } from 'vitest';
import { CATALOG, type Analytics } from '../../src';
import { readSignals } from '../../src/signals';
import { ownUrl } from '../../src/root-domain';
import { arrived, failNext, openApp, pages, received, sleep, start, storeConfig, storedConfig, waitFor } from './helpers';

/** Past the first retry (3 s ± 50 % after the failure at 1.5 s) with room to spare. */
const PAST_RETRY_MS = 6500;

describe('a request in flight when the user says stop is never sent again', () => {
  /** Starts an instance whose first request hangs for `delayMs` and then fails as `fault` says. */
  async function inFlight(fault: string, count = 10, delayMs = 1500) {
    const { a, key } = start();
    await failNext(key, `count=${count}&delayMs=${delayMs}&${fault}`);
    a.record('settings-opened');
    const flushed = a.flush();
    await waitFor(() => received(key), (r) => r.requests.length === 1); // it reached the endpoint, which holds it
    return { a, key, flushed };
  }
  const FAULTS = ['status=503', 'reset=1'];

  test.each([
    ['setEnabled(false)', (a: Analytics) => a.setEnabled(false), 'user-opted-out'],
    ['clear()', (a: Analytics) => a.clear(), 'cleared'],
  ])('%s while it is in flight: aborted, never retried, audited as dropped', async (_what, act, reason) => {
    const runs = await Promise.all(FAULTS.map((f) => inFlight(f, 10, 5000))); // both still held when the act lands, however slow the machine
    await act(runs[0]!.a); // consent and the id are the origin's: one call stops both
    await Promise.all(runs.map((r) => r.flushed));
    await sleep(PAST_RETRY_MS);
    for (const { a, key } of runs) {
      const r = await received(key);
      expect(r.requests.map((q) => q.status)).toHaveLength(1); // no retry, ever
      expect(r.events).toHaveLength(0);
      expect(a.audit().filter((e) => e.outcome === 'sent')).toEqual([]);
      expect(a.audit().find((e) => e.name === 'settings-opened')).toMatchObject({ outcome: 'unconfirmed', reason: `${reason}: its request was aborted in flight; it may have reached the endpoint` });
      expect((await a.config()).delivery.pending).toBe(0);
    }
  }, 20_000);

  test('shutdown() while it is in flight: never retried by this page; control: without it, it is retried and arrives', async () => {
    const stopped = await Promise.all(FAULTS.map((f) => inFlight(f)));
    const control = await Promise.all(FAULTS.map((f) => inFlight(f, 1))); // the endpoint recovers after this one
    await Promise.all(stopped.map((r) => r.a.shutdown()));
    const atShutdown = await Promise.all(stopped.map(async ({ key }) => (await received(key)).requests.length));
    await sleep(PAST_RETRY_MS);
    for (const [i, { a, key }] of stopped.entries()) {
      expect((await received(key)).requests).toHaveLength(atShutdown[i]!); // nothing after shutdown() resolved
      expect(a.audit().filter((e) => e.outcome === 'sent')).toEqual([]);
    }
    await Promise.all(control.map(({ key }) => waitFor(() => received(key), (r) => r.events.length === 1, 10_000)));
  }, 30_000);
});

describe('"sent" means the endpoint has it', () => {
  test('quota: the event the endpoint answered quota_limited for is sent-with-a-note; the next ones are dropped, not sent', async () => {
    const { a, key } = start();
    await failNext(key, 'count=1&quota=1');
    a.record('settings-opened');
    await a.flush();
    expect(a.audit()).toEqual([expect.objectContaining({ outcome: 'sent', reason: 'the endpoint answered quota_limited: PostHog discards it' })]);
    a.record('help-button-clicked');
    await a.flush();
    expect(a.audit().at(-1)).toMatchObject({ name: 'help-button-clicked', outcome: 'dropped', reason: expect.stringMatching(/^quota-limited: /) });
    expect((await received(key)).requests).toHaveLength(1); // the second was never requested
    // posthog-js would keep such an answer for every project on its instance; ours is per project.
    const other = start();
    other.a.record('settings-opened');
    await other.a.flush();
    expect((await received(other.key)).events).toHaveLength(1);
  });

  test('refused connection, then an opt-out: dropped (user-opted-out), never "sent"', async () => {
    const { a } = start({ apiHost: 'http://127.0.0.1:9' });
    a.record('settings-opened');
    await a.flush(); // refused: waits for a retry
    expect(a.audit()).toEqual([]);
    await a.setEnabled(false);
    expect(a.audit()).toEqual([expect.objectContaining({ name: 'settings-opened', outcome: 'dropped', reason: 'user-opted-out' })]);
  });

  test('the audit says "sent" only after the endpoint answered', async () => {
    const { a, key } = start();
    await failNext(key, 'count=1&status=200&delayMs=3000');
    a.record('settings-opened');
    const flushed = a.flush();
    await waitFor(() => received(key), (r) => r.requests.length === 1);
    expect(a.audit()).toEqual([]); // the request is out, no answer yet
    await flushed;
    expect(a.audit()).toEqual([expect.objectContaining({ outcome: 'sent' })]);
  });
});

describe('the embedder\'s meta tags fail closed', () => {
  const withTags = (contents: (string | null)[], name = 'rerun-analytics') => {
    const tags = contents.map((c) => {
      const m = document.createElement('meta');
      m.name = name;
      if (c !== null) m.content = c;
      document.head.append(m);
      return m;
    });
    try {
      return readSignals().embedderForbids;
    } finally {
      for (const t of tags) t.remove();
    }
  };
  test.each<[(string | null)[], boolean]>([
    [[], false],
    [['off'], true],
    [['allow'], false],
    [['ON'], false],
    [[' yes '], false],
    [['allow', 'off'], true], // any one "off" wins, wherever it is
    [['off', 'allow'], true],
    [['allow', 'maybe'], true], // not an explicit allow
    [['please'], true],
    [[''], true],
    [[null], true], // no content at all
    [['allow', 'enabled', 'true'], false],
  ])('%o → forbids: %s', (contents, forbids) => {
    expect(withTags(contents)).toBe(forbids);
  });
  test('the name is matched case-insensitively', () => {
    expect(withTags(['off'], 'Rerun-Analytics')).toBe(true);
  });
});

describe('posthog-js options that read the page are pinned', () => {
  test.each([
    ['?__posthog_debug=true in the URL', '&__posthog_debug=true', undefined],
    ['a ph_debug flag left in localStorage', '', `localStorage.setItem('ph_debug', 'true');`],
  ])('%s: no debug logging, no ph_debug written, delivery unchanged', async (_what, query, init) => {
    const key = `phc_debug_${Math.random().toString(36).slice(2)}`;
    const page = await openApp(key, query, init);
    await pages.pageEval(page, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); })`);
    await arrived(key, 1);
    const ls = await pages.pageEval(page, 'Object.keys(localStorage)');
    const logs = (await pages.pageConsole(page)).filter((l) => /posthog/i.test(l));
    await pages.closePage(page);
    expect(ls).not.toContain('ph_debug');
    expect(logs).toEqual([]);
  });
});

describe('host-declared events are checked once, then frozen', () => {
  test('mutating the events object after createAnalytics changes nothing', async () => {
    const events = { export_clicked: { kind: 'Append', why: 'Counts exports.', props: { format: 'string' } } } as Record<string, { kind: string; why: string; props: Record<string, string> }>;
    const { a, key } = start({ events: events as never });
    events.export_clicked!.props.$current_url = 'string';
    events.export_clicked!.props.distinct_id = 'string';
    events.export_clicked!.kind = 'Identify';
    events.sneaky = { kind: 'Append', why: 'x', props: { url: 'string' } };
    a.record('export_clicked' as never, { format: 'csv', $current_url: location.href, distinct_id: 'someone-else' } as never);
    a.record('sneaky' as never, { url: location.href } as never);
    const [e] = await arrived(key, 1);
    expect(e!.event).toBe('export_clicked');
    expect(e!.properties).not.toHaveProperty('$current_url');
    expect(e!.properties.distinct_id).toBe((await a.config()).analyticsId);
    expect(a.audit().find((x) => x.name === 'sneaky')).toMatchObject({ outcome: 'dropped', reason: expect.stringMatching(/unknown event/) });
  });

  test('the built-in catalog is frozen too (it is exported)', () => {
    expect(Object.isFrozen(CATALOG)).toBe(true);
    expect(Object.isFrozen(CATALOG.viewer_started.props)).toBe(true);
    expect(() => {
      (CATALOG.viewer_started.props as Record<string, string>).$current_url = 'string';
    }).toThrow(TypeError);
  });
});

describe('rerun_url: the page and the example, never secrets', () => {
  test.each<[string, string | undefined]>([
    ['https://app.rerun.io/viewer', 'https://app.rerun.io/viewer'],
    ['https://rerun.io/viewer?url=https%3A%2F%2Fapp.rerun.io%2Fexamples%2Fdna.rrd', 'https://rerun.io/viewer?url=https%3A%2F%2Fapp.rerun.io%2Fexamples%2Fdna.rrd'],
    // a signed recording URL on someone's bucket, an OAuth code, a token in the fragment, userinfo
    ['https://rerun.io/viewer?url=https%3A%2F%2Fprivate-bucket.s3.amazonaws.com%2Fa.rrd%3FX-Amz-Signature%3Dabc', 'https://rerun.io/viewer'],
    ['https://app.rerun.io/callback?code=secret&state=xyz', 'https://app.rerun.io/callback'],
    ['https://app.rerun.io/viewer#access_token=abc', 'https://app.rerun.io/viewer'],
    ['https://user:pass@app.rerun.io/viewer', 'https://app.rerun.io/viewer'],
    // an own-domain URL in the query is reduced the same way
    ['https://rerun.io/viewer?url=https%3A%2F%2Fapp.rerun.io%2Fx.rrd%3Ftoken%3Dabc%23frag', 'https://rerun.io/viewer?url=https%3A%2F%2Fapp.rerun.io%2Fx.rrd'],
    ['https://rerun.io/viewer?url=rerun%2Bhttps%3A%2F%2Fapp.rerun.io%2Fx', 'https://rerun.io/viewer'], // not http(s)
    ['https://rerun.io.evil.example/x', undefined],
    ['https://example.com/?url=https://rerun.io/', undefined],
  ])('%s → %s', (url, expected) => {
    expect(ownUrl(url)).toBe(expected);
  });
});

describe('cross-tab clear, and a page back from the back/forward cache', () => {
  test('after another tab\'s clear(), nothing leaves under the old id, even from a flush or a pagehide right then', async () => {
    const key = `phc_xclear_${Math.random().toString(36).slice(2)}`;
    const a = await openApp(key, '&flush=60000');
    const b = await openApp(key, '&flush=60000');
    await pages.pageEval(b, `analytics.ready.then(() => { analytics.record('settings-opened'); return analytics.flush(); })`); // transport loaded
    await waitFor(() => received(key), (r) => r.events.length === 1);
    const oldId = (await pages.pageEval(a, 'analytics.config().then((c) => c.analyticsId)')) as string;
    for (let delay = 0; delay <= 4; delay++) {
      await pages.pageEval(b, `analytics.record('help-button-clicked')`); // waits a minute
      await pages.pageEval(b, `new Promise((r) => setTimeout(r, 50))`);
      const cleared = pages.pageEval(a, `analytics.clear().then(() => Date.now())`);
      await sleep(delay);
      await pages.pageEval(b, `analytics.flush(); dispatchEvent(new PageTransitionEvent('pagehide'))`);
      await cleared;
    }
    await sleep(500);
    const newId = (await pages.pageEval(a, 'analytics.config().then((c) => c.analyticsId)')) as string;
    const r = await received(key);
    await pages.closePage(a);
    await pages.closePage(b);
    expect(newId).not.toBe(oldId);
    expect(r.events.filter((e) => e.event === 'help-button-clicked' && e.properties.distinct_id === oldId)).toEqual([]);
  }, 20_000);

  test('pageshow from the back/forward cache: the stored choice is read again (messages were missed while frozen)', async () => {
    const { a } = start();
    await a.ready;
    expect(a.isEnabled()).toBe(true);
    const stored = (await storedConfig())!;
    await storeConfig({ ...stored, choice: 'disabled' }); // another tab opted out while this page was frozen; its message is lost
    expect(a.isEnabled()).toBe(true);
    dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }));
    expect(a.isEnabled()).toBe(false); // held at once, until the read answers
    await waitFor(() => a.config(), (c) => c.reason === 'user-opted-out');
    a.record('settings-opened');
    expect(a.audit().at(-1)).toMatchObject({ outcome: 'dropped', reason: 'user-opted-out' });
  });

  test('control: a pageshow that is not a restore changes nothing', async () => {
    const { a } = start();
    await a.ready;
    dispatchEvent(new PageTransitionEvent('pageshow', { persisted: false }));
    expect(a.isEnabled()).toBe(true);
  });
});

test('recordNative: an id that is already 64 lowercase hex characters is taken as native\'s hash; any other is hashed (the documented rule)', async () => {
  const { a, key } = start();
  const looksHashed = 'a'.repeat(64);
  a.recordNative({
    time_utc: new Date().toISOString(),
    kind: 'Append',
    name: 'open_recording',
    props: { application_id: { String: looksHashed }, recording_id: { String: 'plain' }, store_source: { String: 'file' }, store_version: { String: '1' }, app_id_starts_with_rerun_example: { Bool: false } },
  });
  const [e] = await arrived(key, 1);
  expect(e!.properties.application_id).toBe(looksHashed); // taken as native's hash: the README says so
  expect(e!.properties.recording_id).not.toBe('plain');
});
