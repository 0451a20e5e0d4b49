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
