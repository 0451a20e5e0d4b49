// The hash vectors the tests use are a copy of the shared reference; keep them equal.
import { expect, test } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const shared = resolve(root, '../shared/reference/hash-vectors.json');

test('test/fixtures/hash-vectors.json equals ../shared/reference/hash-vectors.json', (ctx) => {
  if (!existsSync(shared)) return ctx.skip(`no ${shared} (a clone outside the project's workspace): the copy has nothing to be compared with`);
  const copy = JSON.parse(readFileSync(resolve(root, 'test/fixtures/hash-vectors.json'), 'utf8'));
  expect(copy).toEqual(JSON.parse(readFileSync(shared, 'utf8')));
  expect(copy.length).toBeGreaterThanOrEqual(7);
});
