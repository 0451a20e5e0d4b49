// `npm start` works for a person: the demo page records through the real posthog-js into the
// dev server's own capture sink, and the toggle turns it off. Driven like a person would.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createServer, type ViteDevServer } from 'vite';
import { chromium, type Browser } from 'playwright';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
let server: ViteDevServer;
let browser: Browser;
let base: string;

beforeAll(async () => {
  server = await createServer({ configFile: resolve(root, 'vite.config.ts'), root: resolve(root, 'demo'), server: { port: 0, host: '127.0.0.1' }, logLevel: 'silent' });
  await server.listen();
  base = server.resolvedUrls!.local[0]!;
  browser = await chromium.launch({
    executablePath: ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)),
    // A person's browser: navigator.webdriver is false, so the automation gate does not apply.
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--disable-blink-features=AutomationControlled'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

test('demo: record, see it sent and received, turn it off, see it dropped', async () => {
  const page = await browser.newPage();
  await page.goto(base);
  await expect.poll(() => page.locator('#state').textContent(), { timeout: 10_000 }).toContain('on (default)');
  await page.selectOption('#event', 'load_data_source');
  await page.click('#record');
  await page.click('#flush');
  await expect.poll(() => page.locator('#audit tr.sent').count(), { timeout: 10_000 }).toBe(1);
  await expect.poll(() => page.locator('#received').textContent(), { timeout: 10_000 }).toContain('load_data_source');

  await page.getByRole('checkbox', { name: 'Send anonymous usage data' }).click(); // off, on the toggle element
  await expect.poll(() => page.locator('#state').textContent()).toContain('off (user-opted-out)');
  await page.click('#record');
  await expect.poll(() => page.locator('#audit tr.dropped').count()).toBe(1);
  expect(await page.locator('#audit tr.dropped').first().textContent()).toContain('user-opted-out');
  const received = (await (await fetch(`${base}__sink/received?key=phc_demo`)).json()) as { events: unknown[] };
  expect(received.events).toHaveLength(1);
  await page.close();
}, 60_000);
