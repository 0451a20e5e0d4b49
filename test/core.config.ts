// The pure core's tests alone, in Node, without packing the package: the step() specification, the
// storage contract's rules and its in-memory implementation, and the model. `npm run mutation`
// (StrykerJS, stryker.config.json) runs them against each mutant, with fewer model interleavings
// than `npm test` and from one seed, so that the score is the same every run; `npm run model` runs
// the model's properties from fresh seeds (MODEL_SEED, MODEL_RUNS and MODEL_LONG_RUNS given).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/node/step.test.ts', 'test/node/contract.test.ts', 'test/node/model.test.ts'],
    environment: 'node',
    env: {
      MODEL_RUNS: process.env.MODEL_RUNS ?? '300',
      MODEL_LONG_RUNS: process.env.MODEL_LONG_RUNS ?? '60',
      MODEL_SEED: process.env.MODEL_SEED ?? '20261207',
    },
  },
});
