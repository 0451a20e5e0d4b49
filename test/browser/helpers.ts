// Shared test helpers (browser side). Every test talks to the real capture endpoint and
// isolates itself by a project key of its own.
import { afterEach, beforeEach, inject } from 'vitest';
import { commands } from 'vitest/browser';
import { promisifyRequest } from 'idb-keyval';
import { createAnalytics, type Analytics, type AnalyticsOptions, type ConfigSnapshot } from '../../src';
import { CONFIG, DB_NAME, EVENTS, LEGACY_OUTBOX, openStorage, type OutboxEntry, type StoredConfig } from '../../src/store';
import { CHANNEL_NAME } from '../../src/tabs';

/** The tests' own connection to the module's database. */
export const db = openStorage();
const transaction = db.transaction;
import type { ReceivedEvent, RequestLogEntry } from '../../dev/capture-sink';
import type { RouteAction, RouteSpec } from '../page-commands';

export const sinkUrl = inject('sinkUrl');

export const newKey = (what = 'test') => `phc_${what}_${Math.random().toString(36).slice(2)}`;

export async function received(key?: string): Promise<{ events: ReceivedEvent[]; requests: RequestLogEntry[]; duplicates: ReceivedEvent[] }> {
  const res = await fetch(`${sinkUrl}/__sink/received${key ? `?key=${encodeURIComponent(key)}` : ''}`);
  return res.json();
}

/** Fault injection: the sink answers the next requests of `key` as `query` says (count, status, delayMs, reset, quota, retryAfter, keep, redirect). */
export const failNext = (key: string, query: string) => fetch(`${sinkUrl}/__sink/fail?key=${key}&${query}`, { method: 'POST' });

/** Makes writes to the outbox store fail (disk full) until the returned function is called. */
export function failOutboxWrites(): () => void {
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
    if (this.name === EVENTS) throw new DOMException('disk full', 'QuotaExceededError');
    return put.apply(this, args);
  } as IDBObjectStore['put'];
  return () => void (IDBObjectStore.prototype.put = put);
}

/** Polls until `ok` holds (or throws after `timeoutMs`, with the last value in the message). The default bound is generous: a busy 2-core machine loads posthog-js slowly. */
export async function waitFor<T>(read: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await read();
    if (ok(last)) return last;
    if (Date.now() > end) throw new Error(`waitFor timed out; last value: ${JSON.stringify(last).slice(0, 2000)}`);
    await sleep(25);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The audit once it has `n` entries of this outcome: the endpoint's answer reaches the page after the endpoint has the events. */
export const audited = <E extends { outcome: string }>(read: () => E[] | Promise<E[]>, outcome: string, n: number) =>
  waitFor(read, (x) => x.filter((e) => e.outcome === outcome).length >= n);

/** Events for `key` once `count` have arrived. */
export const arrived = (key: string, count: number) => waitFor(() => received(key), (r) => r.events.length >= count).then((r) => r.events);

/** Wipes our IndexedDB (config and outbox) and localStorage: every test starts as a first visit. */
export async function resetStorage() {
  await transaction([CONFIG, EVENTS, LEGACY_OUTBOX], 'readwrite', (tx) => {
    tx.objectStore(CONFIG).clear();
    tx.objectStore(EVENTS).clear();
    tx.objectStore(LEGACY_OUTBOX).clear();
  });
  localStorage.clear();
}

/** The stored config record, as IndexedDB has it. */
export const storedConfig = () => transaction([CONFIG], 'readonly', (tx) => promisifyRequest(tx.objectStore(CONFIG).get('config'))) as Promise<StoredConfig | undefined>;
/** Writes the config record directly (as another tab, or an earlier version, would have). */
export const storeConfig = (config: Partial<StoredConfig>) => transaction([CONFIG], 'readwrite', (tx) => void tx.objectStore(CONFIG).put(config, 'config'));
/** Everything in the outbox (its records hold a write's entries each; version 2's, one), oldest first. */
export const outboxEntries = () =>
  transaction([EVENTS, LEGACY_OUTBOX], 'readonly', (tx) => Promise.all([EVENTS, LEGACY_OUTBOX].map((s) => promisifyRequest(tx.objectStore(s).getAll())))).then((stores: { entries?: OutboxEntry[] }[][]) =>
    stores.flat().flatMap((r) => r.entries ?? [r as OutboxEntry]).sort((a, b) => (a.uuid < b.uuid ? -1 : 1)),
  );

// The stages' chunk (src/core.ts) is fetched by the first createAnalytics() of a page; later
// ones start at once. Fetch it before the tests, so that each test sees what a page that has been
// running for a moment sees (what happens before it arrives is tested in startup.test.ts).
await createAnalytics({ projectKey: 'phc_warm', apiHost: sinkUrl, globalName: false }).shutdown();

const live: Analytics[] = [];

/** An instance pointed at the sink, with a fast flush and `force` (the test browser is automated). */
export function start(options: Partial<AnalyticsOptions> = {}) {
  const key = options.projectKey ?? newKey();
  const a = createAnalytics({ projectKey: key, apiHost: sinkUrl, flushIntervalMs: 50, globalName: false, force: true, ...options });
  live.push(a);
  return { a, key };
}

/** A message from "another tab" on the module's channel (tabs.ts). */
export function post(message: object): void {
  const channel = new BroadcastChannel(CHANNEL_NAME);
  channel.postMessage(message);
  channel.close();
}

const holds: (() => Promise<void>)[] = [];
/**
 * Holds storage busy: a readwrite transaction over both stores (a chain of gets), so that every
 * tab's storage ops wait behind it. Returns what releases it; released after each test at the latest.
 */
export async function holdStorage(): Promise<() => Promise<void>> {
  const dbx = await promisifyRequest(indexedDB.open(DB_NAME));
  const tx = dbx.transaction([CONFIG, EVENTS, LEGACY_OUTBOX], 'readwrite');
  let holding = true;
  const done = new Promise<void>((resolve) => (tx.oncomplete = tx.onabort = () => resolve()));
  await new Promise<void>((started) => {
    const spin = (): void => void (tx.objectStore(CONFIG).get('__spin').onsuccess = () => (started(), holding && spin()));
    spin();
  });
  const release = async () => {
    if (!holding) return;
    holding = false;
    holds.splice(holds.indexOf(release), 1);
    await done;
    dbx.close();
  };
  holds.push(release);
  return release;
}

beforeEach(resetStorage);
afterEach(async () => {
  for (const release of [...holds]) await release(); // first: shutdown() waits for storage
  await Promise.all(live.splice(0).map((a) => a.shutdown()));
});

/** Typed wrappers around the page commands (test/page-commands.ts). */
type PageCommands = {
  openPage(path: string, initScript?: string, routes?: RouteSpec[]): Promise<string>;
  pageEval(id: string, expression: string): Promise<unknown>;
  pageReload(id: string): Promise<void>;
  pageRequests(id: string): Promise<string[]>;
  contextCookies(): Promise<{ name: string; domain: string }[]>;
  pageClickCheckbox(id: string, name: string): Promise<void>;
  closePage(id: string): Promise<void>;
  pageRoute(id: string, pattern: string, action: RouteAction, flags?: string): Promise<void>;
  pageGoto(id: string, path: string): Promise<void>;
  pageCdp(id: string, method: string, params?: Record<string, unknown>): Promise<unknown>;
  pageUrl(id: string): Promise<string>;
  pageConsole(id: string): Promise<string[]>;
  pagePosts(id: string): Promise<{ url: string; body: string | null }[]>;
  pageCrash(id: string): Promise<void>;
  pageOffline(id: string, offline: boolean): Promise<void>;
};
export const pages = commands as unknown as PageCommands;

/** Opens the fixture host page in a new tab of this browser context. */
export function openApp(key: string, extra = '', initScript?: string, routes?: RouteSpec[]): Promise<string> {
  const path = `/test/fixtures/app.html?key=${key}&sink=${encodeURIComponent(sinkUrl)}${extra}`;
  // (An undefined argument before a defined one does not survive the trip to the command: pass '' for none.)
  return routes ? pages.openPage(path, initScript ?? '', routes) : pages.openPage(path, initScript);
}

/** Init scripts that set what the browser says, before any page script runs. */
export const INIT = {
  gpc: `Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true, configurable: true });`,
  dnt: `Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1', configurable: true });`,
  /** A person's browser: navigator.webdriver false, so the automation gate does not apply. */
  human: `Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => false, configurable: true });`,
  noIndexedDB: `IDBFactory.prototype.open = function () { throw new DOMException('storage blocked', 'SecurityError'); };`,
};

/** Evaluates `js` in a page (an expression, or an async IIFE) and returns its JSON value. */
export const evalIn = (page: string, js: string) => pages.pageEval(page, js);
/** A fixture page's `analytics.config()`. */
export const configOf = (page: string) => evalIn(page, 'analytics.config()') as Promise<ConfigSnapshot>;

/** The fixture pages a test file opens (openApp), each closed after its test at the latest. */
export function appPages() {
  const opened = new Set<string>();
  afterEach(async () => {
    for (const id of [...opened]) await pages.closePage(id).catch(() => undefined);
    opened.clear();
  });
  /** Any page of the test server (a path). */
  const open = async (path: string): Promise<string> => {
    const id = await pages.openPage(path);
    opened.add(id);
    return id;
  };
  return {
    async app(key: string, extra = '', init?: string, routes?: RouteSpec[]): Promise<string> {
      const id = await openApp(key, extra, init, routes);
      opened.add(id);
      return id;
    },
    open,
    async close(id: string): Promise<void> {
      opened.delete(id);
      await pages.closePage(id);
    },
    /** A host page (no instance of its own) embedding the fixture page in a same-origin iframe (#viewer); `ready`: its instance has read storage. */
    async frame(key: string, ready = true): Promise<string> {
      const host = await open(`/test/fixtures/app.html?bare=1&sink=${encodeURIComponent(sinkUrl)}`);
      const src = `/test/fixtures/app.html?toggle=0&key=${key}&sink=${encodeURIComponent(sinkUrl)}`;
      await evalIn(host, `new Promise((resolve) => { const f = document.createElement('iframe'); f.id = 'viewer'; f.src = '${src}'; f.onload = () => resolve(0); document.body.append(f); })`);
      await waitFor(() => evalIn(host, `typeof document.getElementById('viewer').contentWindow.analytics`), (t) => t === 'object');
      if (ready) await evalIn(host, `document.getElementById('viewer').contentWindow.analytics.ready`);
      return host;
    },
  };
}

/** Records two events in a fixture page, flushes, and reports its state and what it fetched since load. */
export async function exercise(page: string): Promise<{ state: [boolean, string]; transportFetched: boolean; toggle: { reason?: string; checked: boolean; disabled: boolean; text: string } }> {
  const before = (await pages.pageRequests(page)).length;
  const result = (await pages.pageEval(page, `(async () => {
    await analytics.ready;
    analytics.record('settings-opened');
    analytics.record('help-button-clicked');
    await analytics.flush();
    const el = document.querySelector('rerun-analytics-toggle');
    // The toggle's drawing is a chunk of its own: wait until it shows a state (10 s at most), then a little more.
    for (let i = 0; i < 400 && (el.dataset.reason ?? 'loading') === 'loading'; i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 250));
    const c = await analytics.config();
    const input = el.querySelector('input');
    return { state: [c.enabled, c.reason], toggle: { reason: el.dataset.reason, checked: input.checked, disabled: input.disabled, text: el.querySelector('small').textContent } };
  })()`)) as { state: [boolean, string]; toggle: { reason?: string; checked: boolean; disabled: boolean; text: string } };
  const fetched = (await pages.pageRequests(page)).slice(before);
  return { ...result, transportFetched: fetched.some((u) => /posthog/i.test(u)) };
}
