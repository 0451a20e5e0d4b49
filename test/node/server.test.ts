// Server-side import (Next, Nuxt, SvelteKit render on Node): the package is inert there. A real
// Node process imports the packed package (test/pack-setup.ts) from a host's node_modules, creates 20 instances, records, guards fetch, and must
// exit by itself, with no global set, fetch untouched, and config() saying why it is off.
// `require()` (Node ≥ 20.19's require(esm)) loads it too, through the `default` condition.
import { expect, inject, test } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

const SCRIPT = `
const f0 = globalThis.fetch;
const m = await import('re-analytics-web');
const list = [];
for (let i = 0; i < 20; i++) { const a = m.createAnalytics({ projectKey: 'phc_ssr' }); a.record('settings-opened'); list.push(a); }
m.guardViewerTelemetry(list[0]);
const c = await list[0].config();
console.log(JSON.stringify({ global: typeof globalThis.rerunAnalytics, fetchPatched: globalThis.fetch !== f0, reason: c.reason, storage: c.storage, outbox: c.delivery.outbox, enabled: list[0].isEnabled(), audit: list[0].audit().map((e) => e.reason), instances: list.length }));
`;

test('off the browser: inert, no global, fetch untouched, and the process exits without shutdown()', async () => {
  // A generous bound: the process must exit by itself (execFile rejects if it is still running at 20 s).
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', SCRIPT], { cwd: inject('hosts'), timeout: 20_000 });
  expect(JSON.parse(stdout)).toEqual({ global: 'undefined', fetchPatched: false, reason: 'not-a-browser', storage: 'unavailable', outbox: 'memory', enabled: false, audit: ['not-a-browser'], instances: 20 });
}, 60_000);

test('require() loads it (the exports map has a default condition)', async () => {
  const { stdout } = await run(process.execPath, ['-e', "const m = require('re-analytics-web'); m.createAnalytics({ projectKey: 'phc_cjs' }).config().then((c) => console.log(c.reason))"], { cwd: inject('hosts'), timeout: 20_000 });
  expect(stdout.trim()).toBe('not-a-browser');
}, 60_000);
