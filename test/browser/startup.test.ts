// What a page sees at startup, before the stages' chunk (src/core.ts) has arrived: record()
// queues, nothing is judged or sent yet, and once the chunk is there everything queued is
// handled as if it had been recorded then.
import { expect, test } from 'vitest';
import { arrived, openApp, pages, received } from './helpers';

test('record() before the stages are loaded: queued, then judged and delivered; audit() shows them once judged', async () => {
  const key = `phc_startup_${Math.random().toString(36).slice(2)}`;
  const page = await openApp(key, '&bare=1'); // imports the module, creates nothing
  const result = (await pages.pageEval(page, `(() => {
    const a = rerun.createAnalytics({ projectKey: ${JSON.stringify(key)}, apiHost: new URLSearchParams(location.search).get('sink'), globalName: false, force: true, flushIntervalMs: 100 });
    a.record('settings-opened');
    a.record('no_such_event');
    const before = { audit: a.audit(), enabled: a.isEnabled(), details: a.details() };
    return a.ready.then(() => ({ before, after: a.audit() }));
  })()`)) as { before: { audit: unknown[]; enabled: boolean; details: string }; after: { name: string; outcome: string }[] };
  expect(result.before).toEqual({ audit: [], enabled: false, details: 'The disclosure is loading; ask again in a moment.' });
  expect(result.after).toEqual([expect.objectContaining({ name: 'no_such_event', outcome: 'dropped' })]);
  const [e] = await arrived(key, 1);
  await pages.closePage(page);
  expect(e!.event).toBe('settings-opened');
  expect((await received(key)).events).toHaveLength(1);
});
