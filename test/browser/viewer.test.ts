// The shipped viewer, unchanged (@rerun-io/web-viewer 0.33.0, its real WASM, WebGL on
// SwiftShader). Its analytics are compiled out, but its log-in code still POSTs a `$set` with
// the user's email to tel.rerun.io — no opt-out reaches it. With guardViewerTelemetry() that
// request is taken by the module instead. (tel.rerun.io is also blocked by every page here, so
// that no test can reach it: the request log shows an attempt even when blocked.)
import { expect, test } from 'vitest';
import { VIEWER_TELEMETRY_URL } from '../../src';
import { audited, pages, received, sinkUrl, storedConfig, waitFor } from './helpers';

const EMAIL = 'someone@example.com';
const ORG = 'org_2xAbCdEf';
/** An unsigned token with the claims re_auth reads (it decodes them without verifying). */
const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
const now = Math.floor(Date.now() / 1000);
const JWT = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: 'https://test.invalid', sub: 'user_1', org_id: ORG, permissions: ['read'], sid: 'sid_1', jti: 'jti_1', exp: now + 3600, iat: now })}.sig`;

async function openViewer(key: string, analytics: 'on' | 'off' | 'none', guard: 'before' | 'after' | 'none') {
  const page = await pages.openPage(`/test/fixtures/viewer.html?key=${key}&sink=${encodeURIComponent(sinkUrl)}&analytics=${analytics}&guard=${guard}`);
  await pages.pageRoute(page, 'https://tel.rerun.io/**', 'abort'); // never the real endpoint, guard or not
  expect(await pages.pageEval(page, 'viewerStarted')).toBe(true);
  return page;
}
const logIn = (page: string) => pages.pageEval(page, `viewer.set_credentials(${JSON.stringify(JWT)}, ${JSON.stringify(EMAIL)})`);
const telemetryPosts = async (page: string) => (await pages.pagePosts(page)).filter((p) => p.url.startsWith('https://tel.rerun.io/'));
/** Console lines that say something went wrong with sending (the viewer logs its failures). */
const troubles = async (page: string) => (await pages.pageConsole(page)).filter((l) => /^(error|warning)/.test(l) && /analytics|tel\.rerun|posthog|sink|panick/i.test(l));

test('control, no guard: the shipped viewer POSTs its own $set — with the email — to tel.rerun.io, and keeps its id in rerun_config', async () => {
  const page = await openViewer('phc_viewer_control', 'none', 'none');
  await logIn(page);
  const posts = await waitFor(() => telemetryPosts(page), (p) => p.length > 0, 10_000);
  const viewerId = (await pages.pageEval(page, `JSON.parse(localStorage.getItem('rerun_config')).analytics_id`)) as string;
  await pages.closePage(page);
  expect(posts[0]!.url).toBe(VIEWER_TELEMETRY_URL);
  const batch = JSON.parse(posts[0]!.body!) as { api_key: string; batch: { event: string; distinct_id: string; properties: { $set: object } }[] };
  expect(posts[0]!.body).toContain('\n  "batch": ['); // pretty-printed, as the fixtures are
  expect(batch.batch[0]).toMatchObject({ event: '$set', distinct_id: viewerId, properties: { $set: { email: EMAIL, organization_id: ORG } } });
  expect(viewerId).toMatch(/^[0-9a-f]{32}$/);
}, 60_000);

test('opted out, guard installed before the viewer starts: nothing reaches tel.rerun.io, the audit says why, the viewer runs on', async () => {
  const key = 'phc_viewer_off';
  const page = await openViewer(key, 'off', 'before');
  await logIn(page);
  const audit = (await waitFor(() => pages.pageEval(page, 'analytics.audit()'), (a) => (a as unknown[]).length > 0, 10_000)) as { name: string; outcome: string; reason: string }[];
  await logIn(page); // it still runs (set_credentials throws on a stopped viewer)
  await waitFor(() => pages.pageEval(page, 'analytics.audit().length'), (n) => n === 2);
  const posts = await telemetryPosts(page);
  const trouble = await troubles(page);
  await pages.closePage(page);
  expect(audit).toEqual([expect.objectContaining({ name: '$set', outcome: 'dropped', reason: 'user-opted-out' })]);
  expect(posts).toEqual([]);
  expect(trouble).toEqual([]);
  expect((await received(key)).requests).toEqual([]);
}, 60_000);

test('opted in, guard installed after the viewer starts: the same $set reaches our endpoint through posthog-js, with the viewer\'s own id', async () => {
  // A person who logged in with this viewer before (no analytics module then): the viewer made
  // its id and kept it in rerun_config.
  const before = await openViewer('phc_viewer_before', 'none', 'none');
  await logIn(before);
  const viewerId = (await waitFor(() => pages.pageEval(before, `JSON.parse(localStorage.getItem('rerun_config') ?? 'null')?.analytics_id`), Boolean)) as string;
  await pages.closePage(before);
  expect(await storedConfig()).toBeUndefined(); // the module has not run in this browser yet

  const key = 'phc_viewer_on';
  const page = await openViewer(key, 'on', 'after'); // first start: the module adopts the viewer's id
  await logIn(page);
  const r = await waitFor(() => received(key), (x) => x.events.length === 1, 10_000);
  const posts = await telemetryPosts(page);
  const trouble = await troubles(page);
  const audit = await audited(() => pages.pageEval(page, 'analytics.audit()') as Promise<{ name: string; outcome: string }[]>, 'sent', 1);
  await pages.closePage(page);
  const e = r.events[0]!;
  expect(e.event).toBe('$set');
  expect(e.properties.distinct_id).toBe(viewerId);
  expect(e.properties.$set).toEqual({ email: EMAIL, organization_id: ORG });
  expect(Object.keys(e.raw).sort()).toEqual(['event', 'properties', 'timestamp', 'uuid']);
  expect(audit).toEqual([expect.objectContaining({ name: '$set', outcome: 'sent' })]);
  expect(posts).toEqual([]);
  expect(trouble).toEqual([]);
}, 60_000);
