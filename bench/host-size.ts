// What a host's production bundle loads at startup because it uses a module: a small host page
// built with Vite, its initial chunk and the chunks it preloads, gzipped, minus the same page
// without the module. The module is the package as npm ships it (`npm pack`, unpacked into the
// host's node_modules), not src/. Used by the size budget (test/node/size.test.ts) and `npm run bench`.
import { build } from 'vite';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

export const root = resolve(import.meta.dirname, '..');

/** Where the packed package is unpacked: host pages built inside it import `re-analytics-web` from there. */
export const HOSTS = join(root, 'node_modules/.cache/rerun-hosts');

/**
 * `npm pack` (its prepack script builds dist/), unpacked to HOSTS/node_modules/re-analytics-web,
 * as `npm install <tarball>` would. Its own dependencies resolve from the project's node_modules.
 */
export async function unpackPackage(): Promise<string> {
  const run = promisify(execFile);
  const tmp = join(root, 'node_modules/.cache/rerun-pack');
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await run('npm', ['pack', '--pack-destination', tmp], { cwd: root, maxBuffer: 1 << 24 });
  const tarball = (await readdir(tmp)).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack made no tarball');
  await run('tar', ['-xzf', tarball], { cwd: tmp });
  const dest = join(HOSTS, 'node_modules/re-analytics-web');
  await rm(dest, { recursive: true, force: true });
  await mkdir(join(HOSTS, 'node_modules'), { recursive: true });
  await rename(join(tmp, 'package'), dest);
  return HOSTS;
}

/** Gzipped bytes of the initial chunk and its preloads of a Vite-built page whose module script is `main`. */
export async function startupBytes(main: string): Promise<{ bytes: number; files: string[]; code: string }> {
  // Beside the unpacked package (unpackPackage), so that the host resolves it, and its dependencies, as a host would.
  await mkdir(HOSTS, { recursive: true });
  const dir = await mkdtemp(join(HOSTS, 'host-'));
  await writeFile(join(dir, 'index.html'), '<!doctype html><script type="module" src="./main.js"></script>');
  await writeFile(join(dir, 'main.js'), main);
  const outDir = join(dir, 'dist');
  await build({ root: dir, configFile: false, logLevel: 'silent', server: { fs: { allow: [root, dir] } }, build: { outDir, emptyOutDir: true } });
  const html = await readFile(join(outDir, 'index.html'), 'utf8');
  const files = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]!);
  let bytes = 0;
  for (const f of files) bytes += gzipSync(await readFile(join(outDir, f)), { level: 9 }).length;
  const code = await Promise.all(files.map((f) => readFile(join(outDir, f), 'utf8')));
  return { bytes, files, code: code.join('\n') };
}

/** The page without any analytics: what every Vite page loads anyway. */
export const BASELINE = 'globalThis.page = 1;\n';

/** A host that uses this module the way the viewer does: create, record, the settings toggle. */
export const USES_MODULE = `import { createAnalytics, defineAnalyticsToggle } from 're-analytics-web';
const analytics = createAnalytics({ projectKey: 'phc_x' });
defineAnalyticsToggle();
analytics.record('viewer_started', { is_docker: false, is_wsl: false, graphics_adapter_backend: 'webgpu', re_renderer_device_tier: 'x', pixels_per_point: 1, zoom_factor: 1 });
globalThis.page = analytics;
`;

/** The anchor: a host that uses posthog-js directly, its default entry. */
export const USES_POSTHOG = `import posthog from 'posthog-js';
posthog.init('phc_x', { api_host: 'https://eu.i.posthog.com' });
posthog.capture('viewer_started', { is_docker: false });
globalThis.page = posthog;
`;

/** Bytes added at startup by `main` over the baseline page. */
export async function addedAtStartup(main: string): Promise<number> {
  const [base, page] = await Promise.all([startupBytes(BASELINE), startupBytes(main)]);
  return page.bytes - base.bytes;
}
