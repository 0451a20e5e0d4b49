// Browser commands (they run in Node, beside Playwright): real extra pages in the test's own
// browser context — for reloads, second tabs, init scripts (GPC) and request logs. Tests call
// them through `commands` from 'vitest/browser'; see test/browser/pages.ts for typed wrappers.
import type { BrowserCommand } from 'vitest/node';
import type { Page } from 'playwright';

interface Opened {
  page: Page;
  requests: string[];
}
const pages = new Map<string, Opened>();
let counter = 0;

type Ctx = Parameters<BrowserCommand<[]>>[0] & { page: Page; context: import('playwright').BrowserContext };

export const pageCommands = {
  /** Opens `path` (resolved against the test page) in a new tab; `initScript` runs before page scripts. */
  async openPage(ctx: Ctx, path: string, initScript?: string): Promise<string> {
    const page = await ctx.context.newPage();
    const id = `p${++counter}`;
    const opened: Opened = { page, requests: [] };
    page.on('request', (r) => opened.requests.push(r.url()));
    if (initScript) await page.addInitScript(initScript);
    pages.set(id, opened);
    await page.goto(new URL(path, ctx.page.url()).href);
    return id;
  },
  /** Evaluates an expression (it may be an async IIFE) in the page and returns its JSON value. */
  async pageEval(_ctx: Ctx, id: string, expression: string): Promise<unknown> {
    return get(id).page.evaluate(expression);
  },
  async pageReload(_ctx: Ctx, id: string): Promise<void> {
    await get(id).page.reload();
  },
  /** Every URL the page requested since it was opened (and reloaded). */
  async pageRequests(_ctx: Ctx, id: string): Promise<string[]> {
    return [...get(id).requests];
  },
  /** The cookies of the whole browser context, HttpOnly ones included. */
  async contextCookies(ctx: Ctx): Promise<{ name: string; domain: string }[]> {
    return (await ctx.context.cookies()).map(({ name, domain }) => ({ name, domain }));
  },
  /** Clicks the page's checkbox with this accessible name, as a person would (real mouse events). */
  async pageClickCheckbox(_ctx: Ctx, id: string, name: string): Promise<void> {
    await get(id).page.getByRole('checkbox', { name }).click();
  },
  async closePage(_ctx: Ctx, id: string): Promise<void> {
    await pages.get(id)?.page.close();
    pages.delete(id);
  },
};

function get(id: string): Opened {
  const opened = pages.get(id);
  if (!opened) throw new Error(`no page ${id}`);
  return opened;
}
