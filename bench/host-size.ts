// What a host's production bundle loads at startup because it uses a module: a small host page
// built with Vite, its initial chunk and the chunks it preloads, gzipped, minus the same page
// without the module. Used by the size budget (test/node/size.test.ts) and `npm run bench`.
import { build } from 'vite';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

export const root = resolve(import.meta.dirname, '..');

/** Gzipped bytes of the initial chunk and its preloads of a Vite-built page whose module script is `main`. */
export async function startupBytes(main: string): Promise<{ bytes: number; files: string[] }> {
  // Inside the project, so that the host page resolves packages (posthog-js) as a host would.
  await mkdir(join(root, 'node_modules/.cache'), { recursive: true });
  const dir = await mkdtemp(join(root, 'node_modules/.cache/rerun-host-'));
  await writeFile(join(dir, 'index.html'), '<!doctype html><script type="module" src="./main.js"></script>');
  await writeFile(join(dir, 'main.js'), main);
  const outDir = join(dir, 'dist');
  await build({ root: dir, configFile: false, logLevel: 'silent', server: { fs: { allow: [root, dir] } }, build: { outDir, emptyOutDir: true } });
  const html = await readFile(join(outDir, 'index.html'), 'utf8');
  const files = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]!);
  let bytes = 0;
  for (const f of files) bytes += gzipSync(await readFile(join(outDir, f)), { level: 9 }).length;
  return { bytes, files };
}

/** The page without any analytics: what every Vite page loads anyway. */
export const BASELINE = 'globalThis.page = 1;\n';

/** A host that uses this module the way the viewer does: create, record, the settings toggle. */
export const USES_MODULE = `import { createAnalytics, defineAnalyticsToggle } from ${JSON.stringify(join(root, 'src/index.ts'))};
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
