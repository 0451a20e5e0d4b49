// One config for the library build, the demo (`npm start`) and the tests (`npm test`).
import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { existsSync } from 'node:fs';
import { captureSinkPlugin } from './dev/capture-sink.ts';
import { pageCommands } from './test/page-commands.ts';

// Debian's Chromium where it is installed (CI, this machine); elsewhere Playwright's own.
const executablePath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

/** The payload scan reads everything the sink received, so it runs after every other file. */
class ScanLastSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]) {
    const sorted = await super.sort(files);
    return [...sorted.filter((f) => !f.moduleId.includes('payload-scan')), ...sorted.filter((f) => f.moduleId.includes('payload-scan'))];
  }
}

const deps = ['posthog-js', 'idb-keyval', 'nanoid', '@noble/hashes'];

export default defineConfig({
  plugins: [captureSinkPlugin()],
  server: { host: '127.0.0.1', allowedHosts: ['rerun-lan.test', 'app.rerun.io'] },
  // Pre-bundled up front: a mid-run re-optimisation would reload the test page.
  optimizeDeps: {
    include: ['posthog-js/dist/module.slim.no-external.js', 'posthog-js', 'idb-keyval', 'nanoid', '@noble/hashes/sha2.js', '@noble/hashes/utils.js', 'fast-check'],
    // The shipped viewer finds its WASM next to its own module (import.meta.url): served as it is.
    exclude: ['@rerun-io/web-viewer'],
  },
  build: {
    lib: { entry: { index: 'src/index.ts', react: 'src/react.ts' }, formats: ['es'] },
    // Dependencies stay imports: the host's bundler dedupes them and splits posthog-js out.
    // One file per source module, as in src/: the host's bundler sees the same module graph
    // (what is dynamically imported stays a chunk of its own; what is unused is shaken out).
    rolldownOptions: {
      external: (id: string) => deps.some((d) => id === d || id.startsWith(`${d}/`)),
      output: { preserveModules: true, preserveModulesRoot: 'src', entryFileNames: '[name].js' },
    },
    sourcemap: true,
    minify: false,
  },
  test: {
    // The sequencer is global in Vitest (not per project).
    sequence: { sequencer: ScanLastSequencer },
    reporters: ['default', './test/exit-reporter.ts'],
    // expect.poll / expect.element wait 1 s by default: too short on a busy 2-core machine.
    expect: { poll: { timeout: 10_000 } },
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts', 'test/model/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/pack-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          // One IndexedDB per origin is shared by every test: files run one at a time.
          fileParallelism: false,
          testTimeout: 20_000,
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: playwright({
              launchOptions: {
                executablePath,
                args: [
                  '--no-sandbox',
                  '--disable-gpu',
                  '--disable-background-networking',
                  '--disable-component-update',
                  '--disable-sync',
                  '--no-first-run',
                  '--disable-quic',
                  // WebGL without a GPU, for the shipped viewer (viewer.test.ts).
                  '--use-angle=swiftshader',
                  '--enable-unsafe-swiftshader',
                  // Hostnames for real pages of the test server: rerun-lan.test is plain http and
                  // not localhost, so not a secure context; app.rerun.io is the project's domain.
                  '--host-resolver-rules=MAP rerun-lan.test 127.0.0.1, MAP app.rerun.io 127.0.0.1',
                ],
              },
            }),
            instances: [{ browser: 'chromium' }],
            commands: pageCommands,
          },
        },
      },
    ],
  },
});
