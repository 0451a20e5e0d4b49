// `npm run bench` only (not part of `npm test`): bench/bench.test.ts, in Node, driving Chromium.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { include: ['bench/bench.test.ts'], environment: 'node', testTimeout: 30 * 60_000, reporters: ['default'] },
});
