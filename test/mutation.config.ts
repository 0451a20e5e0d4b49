// The Vitest config `npm run mutation` (StrykerJS, stryker.config.json) runs against each mutant
// of the pure core and the storage contract: Node only — the step() specification, the contract's
// rules and its in-memory implementation, and the model. The model runs fewer interleavings here
// than in `npm test` (each mutant runs it), from one seed, so that the score is the same every run.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/node/step.test.ts', 'test/node/contract.test.ts', 'test/node/model.test.ts'],
    environment: 'node',
    env: { MODEL_RUNS: process.env.MODEL_RUNS ?? '1500', MODEL_LONG_RUNS: process.env.MODEL_LONG_RUNS ?? '300', MODEL_SEED: '20261207' },
  },
});
