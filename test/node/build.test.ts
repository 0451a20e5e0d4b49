// The library build: posthog-js must not be in the entry chunk; it stays a dynamic import
// that the host's bundler splits into its own chunk, fetched only when consent is on.
import { describe, expect, test } from 'vitest';
import { build } from 'vite';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');

describe('bundles', () => {
  test('library build: posthog-js is only ever imported dynamically, and not from the entry', async () => {
    const outDir = await mkdtemp(join(tmpdir(), 'rerun-lib-'));
    await build({ root, logLevel: 'silent', build: { outDir, emptyOutDir: true } });
    const files = (await readdir(outDir)).filter((f) => f.endsWith('.js'));
    const code = Object.fromEntries(await Promise.all(files.map(async (f) => [f, await readFile(join(outDir, f), 'utf8')] as const)));
    expect(code['index.js']).not.toContain('posthog-js');
    expect(code['index.js']).toMatch(/import\(["']\.\/core-[\w-]+\.js["']\)/); // the stages: a chunk of their own
    const withImport = files.filter((f) => /import\(["']posthog-js\/dist\/module\.slim\.no-external\.js["']\)/.test(code[f]!));
    expect(withImport).toHaveLength(1);
    for (const f of files) {
      expect(code[f]).not.toMatch(/^\s*import[^(]*["']posthog-js/m); // no static import anywhere
      expect(code[f]).not.toContain('_send_retriable_request'); // a marker of posthog-js's own code
    }
  }, 60_000);

  test('a host app bundle: posthog-js lands in a separate chunk, not the entry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rerun-host-'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><script type="module" src="./main.js"></script>');
    await writeFile(join(dir, 'main.js'), `import { createAnalytics } from ${JSON.stringify(join(root, 'src/index.ts'))};\nglobalThis.a = createAnalytics({ projectKey: 'phc_x' });\n`);
    const outDir = join(dir, 'dist');
    await build({ root: dir, configFile: false, logLevel: 'silent', resolve: { alias: {} }, server: { fs: { allow: [root, dir] } }, build: { outDir, emptyOutDir: true } });
    const files = await readdir(join(outDir, 'assets'));
    const contents = await Promise.all(files.map(async (f) => [f, await readFile(join(outDir, 'assets', f), 'utf8')] as const));
    const html = await readFile(join(outDir, 'index.html'), 'utf8');
    const entryName = /src="\/assets\/([^"]+)"/.exec(html)?.[1];
    const entry = contents.find(([f]) => f === entryName)?.[1] ?? '';
    const withPosthog = contents.filter(([, c]) => c.includes('_send_retriable_request'));
    expect(entryName).toBeTruthy();
    expect(withPosthog.map(([f]) => f)).not.toContain(entryName);
    expect(withPosthog).toHaveLength(1);
    expect(entry).toMatch(/import\(/);
  }, 60_000);
});
