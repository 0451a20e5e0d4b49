// The packed package's types, as a consumer's `tsc` sees them: a React 19 TSX app and a file of
// declarations the runtime refuses (each an @ts-expect-error) compile with no declaration of
// their own, strict and with skipLibCheck off (test/fixtures/consumer-types).
import { expect, inject, test } from 'vitest';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const root = resolve(import.meta.dirname, '../..');
const tsc = join(root, 'node_modules/typescript/bin/tsc');

/** The fixture beside the unpacked package, `change` applied to its app.tsx; tsc's exit and output. */
async function compile(change = (app: string) => app): Promise<{ ok: boolean; out: string }> {
  const dir = await mkdtemp(join(inject('hosts'), 'types-'));
  await cp(join(root, 'test/fixtures/consumer-types'), dir, { recursive: true });
  await writeFile(join(dir, 'app.tsx'), change(await readFile(join(dir, 'app.tsx'), 'utf8')));
  return promisify(execFile)(process.execPath, [tsc, '-p', dir], { cwd: dir }).then(
    ({ stdout }) => ({ ok: true, out: stdout }),
    (err: { stdout?: string }) => ({ ok: false, out: err.stdout ?? String(err) }),
  );
}

test('a React 19 TSX consumer and the refused declarations compile against the packed types', async () => {
  const { ok, out } = await compile();
  expect(out).toBe('');
  expect(ok).toBe(true);
}, 60_000);

test('control: the same app without the React declaration does not compile (the check can fail)', async () => {
  const { ok, out } = await compile((app) => app.replace("import type {} from 're-analytics-web/react';", ''));
  expect(ok).toBe(false);
  expect(out).toMatch(/rerun-analytics-toggle/);
}, 60_000);
