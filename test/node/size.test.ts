// The size budget, on the package as npm ships it: a small host page importing the packed
// package (test/pack-setup.ts), built by Vite as a consumer would, loads at startup — its
// initial chunk and what it preloads, gzipped — at most STARTUP_BUDGET bytes more than the same
// page without it. CI fails past it. What must stay out of that chunk is checked too.
import { expect, inject, test } from 'vitest';
import { BASELINE, USES_MODULE, startupBytes } from '../../bench/host-size';
import { CATALOG } from '../../src/catalog';
import { REASON_TEXT } from '../../src/reason-text';

/** Bytes, gzipped. */
export const STARTUP_BUDGET = 4096;

test(`a host using the packed package (create, record, the toggle) loads at most ${STARTUP_BUDGET} B more at startup (gzip); posthog-js, the stages, the toggle's drawing and the catalog's texts are not in it`, async () => {
  expect(inject('hosts')).toBeTruthy(); // the package was packed and unpacked for this run
  const [base, page] = await Promise.all([startupBytes(BASELINE), startupBytes(USES_MODULE)]);
  const added = page.bytes - base.bytes;
  console.info(`startup: ${added} bytes gzip added by the packed module (budget ${STARTUP_BUDGET})`);
  expect(added).toBeGreaterThan(500); // it does measure something
  expect(added).toBeLessThanOrEqual(STARTUP_BUDGET);
  expect(page.code).toContain('rerunAnalytics'); // the module is in there (the devtools global's name)
  expect(page.code).not.toContain('_send_retriable_request'); // posthog-js
  expect(page.code).not.toContain('drain-lease'); // the stages (drain-lock.ts)
  expect(page.code).not.toContain(REASON_TEXT.default); // the toggle's drawing
  expect(page.code).not.toContain(CATALOG['settings-opened'].why); // the catalog's texts
  expect(page.code).toMatch(/import\(`\.\/core-[\w-]+\.js`\)|import\(["']\.\/core-[\w-]+\.js["']\)/); // the stages: a chunk of their own
}, 120_000);
