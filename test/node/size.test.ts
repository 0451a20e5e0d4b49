// The size budget: what a host's page loads at startup because it uses this module (create,
// record, the settings toggle), gzipped, over the same page without it. CI fails past it.
import { expect, test } from 'vitest';
import { USES_MODULE, addedAtStartup } from '../../bench/host-size';

/** Bytes, gzipped. */
export const STARTUP_BUDGET = 4096;

test(`startup bytes a host adds by using the module: at most ${STARTUP_BUDGET} (gzip)`, async () => {
  const added = await addedAtStartup(USES_MODULE);
  console.info(`startup: ${added} bytes gzip added by the module (budget ${STARTUP_BUDGET})`);
  expect(added).toBeGreaterThan(500); // it does measure something
  expect(added).toBeLessThanOrEqual(STARTUP_BUDGET);
}, 60_000);
