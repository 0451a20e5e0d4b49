// Options errors quote what was given: '1000' (a string) is not 1000.
import { expect, test } from 'vitest';
import { resolveOptions } from '../../src/options';

test.each([
  [{ flushIntervalMs: '1000' }, 'flushIntervalMs must be a positive number, got "1000"'],
  [{ flushIntervalMs: -1 }, 'flushIntervalMs must be a positive number, got -1'],
  [{ auditCapacity: '200' }, 'auditCapacity must be a positive integer, got "200"'],
])('%o → a TypeError that quotes it', (extra, message) => {
  expect(() => resolveOptions({ projectKey: 'phc_x', ...extra } as never)).toThrow(new TypeError(`createAnalytics: ${message}`));
});

const why = 'Counts it.';
test.each([
  [{ e: { kind: 'Append', why, props: { rerun_url: 'string' } } }, 'event "e": property "rerun_url" is filled in by the module, not declared by the host'],
  [{ e: { kind: 'Append', why, props: { app_env: 'string?' } } }, 'event "e": property "app_env" is filled in by the module, not declared by the host'],
  [{ e: { kind: 'Append', why, props: { token: 'string' } } }, 'event "e": property "token" is reserved'],
  [{ e: { kind: 'Append', why, props: { $current_url: 'string' } } }, 'event "e": property "$current_url" is reserved'],
  [{ e: { kind: 'Identify', why, props: {} } }, `event "e": kind must be 'Append'`],
  [{ $pageview: { kind: 'Append', why, props: {} } }, 'event name "$pageview" is reserved'],
  [{ viewer_started: { kind: 'Append', why, props: {} } }, 'event "viewer_started" is already in the built-in catalog'],
])('host events %o → a TypeError at creation, not every record dropped later', (events, message) => {
  expect(() => resolveOptions({ projectKey: 'phc_x', events } as never)).toThrow(new TypeError(`createAnalytics: ${message}`));
});
