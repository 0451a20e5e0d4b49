// The guard for viewer builds already shipped (src/guard.ts): what the viewer's WASM POSTs to
// its telemetry URL is taken and fed to recordNative; everything else reaches the page's real
// fetch exactly as it was called. Here the "real" fetch is a recorder installed first, so that
// what passes through can be compared argument by argument. (The shipped viewer: viewer.test.ts.)
import { afterEach, describe, expect, test } from 'vitest';
import { guardViewerTelemetry, VIEWER_TELEMETRY_URL, type TelemetryGuard } from '../../src';
import { arrived, received, sinkUrl, sleep, start } from './helpers';
import { PIPELINE } from './pipeline-fixtures';

const realFetch = globalThis.fetch;
let calls: { self: unknown; args: unknown[] }[] = [];
let guard: TelemetryGuard | undefined;

/** The page's fetch, as far as the guard can tell: records every call, answers 204 (the tests' own calls to the sink go through). */
function installRecorder() {
  calls = [];
  globalThis.fetch = function (this: unknown, ...args: unknown[]) {
    if (String(args[0]).startsWith(sinkUrl)) return realFetch(...(args as Parameters<typeof fetch>));
    calls.push({ self: this, args });
    return Promise.resolve(new Response(null, { status: 204 }));
  } as typeof fetch;
  return globalThis.fetch;
}

afterEach(() => {
  guard?.uninstall();
  guard = undefined;
  globalThis.fetch = realFetch;
});

const batchBody = (pretty: boolean) => JSON.stringify(PIPELINE.set_person, null, pretty ? 2 : 0);

describe('what it takes', () => {
  test.each([
    ['a string body', () => fetch(VIEWER_TELEMETRY_URL, { method: 'POST', body: batchBody(true), headers: { 'content-type': 'text/plain; charset=utf-8' } })],
    ['a Uint8Array body (as the WASM sends it)', () => fetch(VIEWER_TELEMETRY_URL, { method: 'POST', body: new TextEncoder().encode(batchBody(false)) })],
    ['a Request object', () => fetch(new Request(VIEWER_TELEMETRY_URL, { method: 'POST', body: batchBody(true) }))],
    ['a URL object and a Blob', () => fetch(new URL(VIEWER_TELEMETRY_URL), { method: 'post', body: new Blob([batchBody(false)]) })],
    ['window.fetch(…) with a query string', () => window.fetch(`${VIEWER_TELEMETRY_URL}?x=1`, { method: 'POST', body: batchBody(true) })],
  ])('%s: answered 200 like the endpoint, never forwarded, recorded (consent on: delivered)', async (_what, send) => {
    installRecorder();
    const { a, key } = start();
    guard = guardViewerTelemetry(a);
    const res = await send();
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 1 });
    expect(calls).toEqual([]); // nothing went to the page's fetch, so nothing to tel.rerun.io
    const [e] = await arrived(key, 1);
    expect(e!.event).toBe('$set');
    expect(e!.properties.$set).toEqual(PIPELINE.set_person.batch[0]!.properties.$set);
    expect(e!.properties.distinct_id).toBe((await a.config()).analyticsId); // ours, not the viewer's
  });

  test('opted out: taken, dropped with the reason, and nothing leaves', async () => {
    installRecorder();
    const { a, key } = start();
    await a.disable();
    guard = guardViewerTelemetry(a);
    const res = await fetch(VIEWER_TELEMETRY_URL, { method: 'POST', body: batchBody(true) });
    expect(res.ok).toBe(true);
    await sleep(100);
    expect(calls).toEqual([]);
    expect(a.audit()).toEqual([expect.objectContaining({ name: '$set', outcome: 'dropped', reason: 'user-opted-out' })]);
    expect((await received(key)).requests).toEqual([]);
  });

  test('an aborted signal is honoured as fetch would; an unreadable body is still taken (and audited)', async () => {
    installRecorder();
    const { a } = start();
    guard = guardViewerTelemetry(a);
    const controller = new AbortController();
    controller.abort();
    await expect(fetch(VIEWER_TELEMETRY_URL, { method: 'POST', body: '{}', signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    const res = await fetch(VIEWER_TELEMETRY_URL, { method: 'POST', body: 'not json' });
    expect(res.status).toBe(200);
    expect(a.audit().at(-1)).toMatchObject({ outcome: 'dropped', reason: 'malformed native event: not valid JSON' });
  });
});

describe('what it leaves alone', () => {
  test('every other request reaches the page\'s fetch with the very same arguments', async () => {
    const recorder = installRecorder();
    const { a } = start();
    guard = guardViewerTelemetry(a);
    const request = new Request('https://example.com/data.rrd', { method: 'POST', body: 'x', headers: { 'x-h': '1' } });
    const controller = new AbortController();
    const init = { method: 'POST', body: new ReadableStream(), duplex: 'half', signal: controller.signal } as RequestInit;
    await fetch(request);
    await window.fetch('https://example.com/stream', init);
    await fetch(VIEWER_TELEMETRY_URL); // a GET to the same URL: not telemetry
    await fetch('https://tel.rerun.io/api/other', { method: 'POST', body: '{}' });
    expect(calls.map((c) => c.args)).toEqual([[request], ['https://example.com/stream', init], [VIEWER_TELEMETRY_URL], ['https://tel.rerun.io/api/other', { method: 'POST', body: '{}' }]]);
    expect(calls[0]!.args[0]).toBe(request); // the same object, not a copy
    expect(calls[1]!.args[1]).toBe(init);
    expect(calls[1]!.self).toBe(window);
    guard.uninstall();
    expect(globalThis.fetch).toBe(recorder); // restored
  });

  test('installing twice wraps once; uninstall after someone else wrapped: it stops taking, the chain stays', async () => {
    const recorder = installRecorder();
    const { a } = start();
    guard = guardViewerTelemetry(a);
    const wrapped = globalThis.fetch;
    expect(guardViewerTelemetry(a)).toBe(guard);
    expect(globalThis.fetch).toBe(wrapped); // not wrapped again
    const outer = (...args: Parameters<typeof fetch>) => wrapped(...args); // the host wraps fetch too
    globalThis.fetch = outer as typeof fetch;
    guard.uninstall();
    expect(globalThis.fetch).toBe(outer);
    await fetch(VIEWER_TELEMETRY_URL, { method: 'POST', body: '{}' });
    expect(calls).toHaveLength(1); // not taken any more: it went on to the page's fetch
    globalThis.fetch = recorder;
  });
});
