// The package as npm ships it (test/pack-setup.ts): one file per module, as in src/, so that a
// host's bundler splits it as src/ is split. posthog-js is never imported statically: one
// module imports it dynamically, and the facade reaches the stages only through import().
import { expect, inject, test } from 'vitest';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

test('packed: posthog-js only ever imported dynamically, from one module; the facade loads the stages and the toggle\'s drawing with import()', async () => {
  const pkg = join(inject('hosts'), 'node_modules/re-analytics-web');
  const files = (await readdir(join(pkg, 'dist'), { recursive: true })).filter((f) => f.endsWith('.js'));
  const code = Object.fromEntries(await Promise.all(files.map(async (f) => [f, await readFile(join(pkg, 'dist', f), 'utf8')] as const)));
  expect(Object.keys(code)).toEqual(expect.arrayContaining(['index.js', 'analytics.js', 'core.js', 'toggle-view.js', 'reason-text.js']));
  const withImport = files.filter((f) => /import\(["']posthog-js\/dist\/module\.slim\.no-external\.js["']\)/.test(code[f]!));
  expect(withImport).toEqual(['6-transport.js']);
  for (const f of files) {
    expect(code[f]).not.toMatch(/^\s*import[^(]*["']posthog-js/m); // no static import anywhere
    expect(code[f]).not.toContain('_send_retriable_request'); // a marker of posthog-js's own code
  }
  expect(code['analytics.js']).toMatch(/import\(["']\.\/core\.js["']\)/);
  expect(code['analytics.js']).not.toMatch(/^import[^(]*["']\.\/core\.js["']/m);
  expect(code['toggle-element.js']).toMatch(/import\(["']\.\/toggle-view\.js["']\)/);
  expect(code['index.js']).not.toMatch(/toggle-view/); // REASON_TEXT comes from reason-text.js
});
