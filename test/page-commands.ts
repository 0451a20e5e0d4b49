// Browser commands (they run in Node, beside Playwright): real extra pages in the test's own
// browser context — for reloads, second tabs, init scripts (GPC) and request logs. Tests call
// them through `commands` from 'vitest/browser'; see test/browser/pages.ts for typed wrappers.
import type { BrowserCommand } from 'vitest/node';
import type { Page } from 'playwright';

interface Opened {
  page: Page;
  requests: string[];
  /** Every POST the page made (even one a route blocked), with its body. */
  posts: { url: string; body: string | null }[];
  console: string[];
  /** One DevTools session per page: emulation set by a session lasts as long as it does. */
  cdp?: import('playwright').CDPSession;
  /** The page's DevTools target, to close it again if Chromium dropped a close (see closePage). */
  targetId: string;
}
const pages = new Map<string, Opened>();
let counter = 0;

/**
 * What a route does with the requests it matches: block them ('abort'), let them through 3 s late
 * ('delay') or 8 s late ('slow'), as usual ('continue'), answer 404 ('notfound'), or never answer ('hang').
 */
export type RouteAction = 'abort' | 'delay' | 'slow' | 'continue' | 'notfound' | 'hang';
/** A route set up by openPage before the page loads. `flags` (even '') makes `pattern` a RegExp source. */
export interface RouteSpec {
  pattern: string;
  action: RouteAction;
  flags?: string;
}

async function applyRoute(page: Page, { pattern, action, flags }: RouteSpec): Promise<void> {
  const url = flags === undefined ? pattern : new RegExp(pattern, flags);
  if (flags === undefined) await page.unroute(pattern);
  if (action === 'abort') await page.route(url, (route) => route.abort());
  if (action === 'delay' || action === 'slow') await page.route(url, (route) => setTimeout(() => void route.continue().catch(() => undefined), action === 'slow' ? 8000 : 3000));
  if (action === 'notfound') await page.route(url, (route) => route.fulfill({ status: 404, contentType: 'text/plain', body: 'not found' }));
  if (action === 'hang') await page.route(url, () => undefined); // never continued, never answered
}

type Ctx = Parameters<BrowserCommand<[]>>[0] & { page: Page; context: import('playwright').BrowserContext };

export const pageCommands = {
  /** Opens `path` (resolved against the test page) in a new tab; `initScript` runs before page scripts; `routes` apply from its very first request. */
  async openPage(ctx: Ctx, path: string, initScript?: string, routes: RouteSpec[] = []): Promise<string> {
    const page = await ctx.context.newPage();
    const id = `p${++counter}`;
    const cdp = await ctx.context.newCDPSession(page);
    const { targetInfo } = (await cdp.send('Target.getTargetInfo')) as { targetInfo: { targetId: string } };
    await cdp.detach().catch(() => undefined);
    const opened: Opened = { page, targetId: targetInfo.targetId, requests: [], posts: [], console: [] };
    page.on('request', (r) => {
      opened.requests.push(r.url());
      if (r.method() === 'POST') opened.posts.push({ url: r.url(), body: r.postData() });
    });
    page.on('console', (m) => opened.console.push(`${m.type()}: ${m.text()}`));
    if (initScript) await page.addInitScript(initScript);
    for (const route of routes) await applyRoute(page, route);
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
  /** Requests matching `pattern` (a glob; a RegExp source when `flags` is given): see RouteAction. */
  async pageRoute(_ctx: Ctx, id: string, pattern: string, action: RouteAction, flags?: string): Promise<void> {
    await applyRoute(get(id).page, { pattern, action, ...(flags === undefined ? {} : { flags }) });
  },
  /** Navigates the page to `path` (resolved against the test page), as a link would; resolves once it loaded. */
  async pageGoto(ctx: Ctx, id: string, path: string): Promise<void> {
    await get(id).page.goto(new URL(path, ctx.page.url()).href);
  },
  /** Sends one Chrome DevTools Protocol command in the page's own session (e.g. Storage.clearDataForOrigin). */
  async pageCdp(_ctx: Ctx, id: string, method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const opened = get(id);
    const cdp = (opened.cdp ??= await opened.page.context().newCDPSession(opened.page));
    return cdp.send(method as 'Browser.getVersion', params as never);
  },
  /** The page's URL now (after navigations). */
  async pageUrl(_ctx: Ctx, id: string): Promise<string> {
    return get(id).page.url();
  },
  async pagePosts(_ctx: Ctx, id: string): Promise<{ url: string; body: string | null }[]> {
    return [...get(id).posts];
  },
  /** Everything the page logged to its console. */
  async pageConsole(_ctx: Ctx, id: string): Promise<string[]> {
    return [...get(id).console];
  },
  /** Kills the page's renderer process, as a crash would: no pagehide, no unload, nothing more runs. */
  async pageCrash(_ctx: Ctx, id: string): Promise<void> {
    const { page } = get(id);
    const cdp = await page.context().newCDPSession(page);
    const crashed = page.waitForEvent('crash', { timeout: 5000 }).catch(() => undefined);
    void cdp.send('Page.crash').catch(() => undefined); // the call itself dies with the renderer
    await crashed;
  },
  /** Takes the page offline (or back online), as the network would: navigator.onLine and the offline/online events follow. */
  async pageOffline(_ctx: Ctx, id: string, offline: boolean): Promise<void> {
    const opened = get(id);
    const cdp = (opened.cdp ??= await opened.page.context().newCDPSession(opened.page));
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  },
  /**
   * Closes the page. Chromium can acknowledge a close that races a navigation commit and then
   * never close (crbug.com/536385539, playwright#42068): page.close() would wait forever, so
   * the close is asked again, from the browser's own session, until the page is gone.
   */
  async closePage(ctx: Ctx, id: string): Promise<void> {
    const opened = pages.get(id);
    if (!opened) return;
    pages.delete(id);
    const closed = opened.page.close().then(() => true, () => true);
    for (let i = 0; i < 10 && !(await Promise.race([closed, sleep(1000).then(() => false)])); i++) {
      const browser = await ctx.context.browser()?.newBrowserCDPSession();
      await browser?.send('Target.closeTarget', { targetId: opened.targetId }).catch(() => undefined);
      await browser?.detach().catch(() => undefined);
    }
  },
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function get(id: string): Opened {
  const opened = pages.get(id);
  if (!opened) throw new Error(`no page ${id}`);
  return opened;
}
