// Attack: a closing page's put (a record keyed by its oldest UUID) is overwritten by the write that was
// under way (still queued in its own task) when the page comes back from the back/forward cache.
import { afterEach, expect, test } from 'vitest';
import { openApp, outboxEntries, pages, received, sleep, waitFor } from './helpers';

const opened: string[] = [];
afterEach(async () => { for (const p of opened.splice(0)) await pages.closePage(p).catch(() => undefined); });

test('pagehide (persisted) with a write queued, then pageshow: every event is still stored, delivered once, audited once', async () => {
  const key = `phc_atk_bf_${Math.random().toString(36).slice(2)}`;
  const page = await openApp(key, '&flush=60000');
  opened.push(page);
  const info = await pages.pageEval(page, `(async () => {
    await analytics.ready;
    for (let i = 0; i < 120; i++) analytics.record('settings-opened');
    await null; // the intake's wake-up: a slice judged, a write of 50 issued (it starts in a task of its own)
    await null;
    dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true })); // into the back/forward cache
    dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true })); // …and back
    return 'ok';
  })()`);
  expect(info).toBe('ok');
  await sleep(1500);
  const stored = await outboxEntries();
  const mine = stored.filter((e) => e.projectKey === key);
  console.info(`stored after restore: ${mine.length}`);
  await pages.pageEval(page, 'analytics.flush()');
  await waitFor(() => received(key), (r) => r.events.length >= 120, 8000).catch(() => undefined);
  await sleep(500);
  const r = await received(key);
  const audit = (await pages.pageEval(page, 'analytics.audit()')) as { outcome: string; uuid?: string }[];
  const cfg = (await pages.pageEval(page, 'analytics.config()')) as { delivery: { pending: number } };
  console.info(`received ${r.events.length} (dups ${r.duplicates.length}); audit: ${audit.length} (${audit.filter((a) => a.outcome === 'sent').length} sent); pending ${cfg.delivery.pending}; outbox now ${(await outboxEntries()).length}`);
  expect(mine.length, 'entries stored after the restore').toBe(120);
  expect(r.events.length).toBe(120);
  expect(audit.length).toBe(120);
});
