// Replays one counterexample (MODEL_CASE='[tabs, actions]' as JSON) with MODEL_TRACE=1: a debugging aid.
import { test } from 'vitest';
import { run } from './world';

test.runIf(process.env.MODEL_CASE)('replay MODEL_CASE', () => {
  const [tabs, actions] = JSON.parse(process.env.MODEL_CASE!);
  run(tabs, actions);
});
