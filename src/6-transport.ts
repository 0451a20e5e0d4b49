// Stage 6 — the transport: posthog-js, fetched with a dynamic import() only once consent is on
// and something waits, so a user who opted out never even downloads it. We use the slim,
// no-external-scripts build (no autocapture, recorder, surveys or toolbar code; it cannot load
// scripts from a CDN), and only its request layer: fetch (the {api_key, batch, sent_at} body is ours,
// gzipped by the browser; where it cannot, posthog-js builds and gzips it).
//
// Why not capture(): it adds the page's URL, referrer and user agent to every event; it keeps
// failed requests in a retry queue we cannot reach and retries them after an opt-out; it drops
// events on its own (quota, client rate limit, bot filter) while reporting them captured; and it
// never says whether a request succeeded. So every attempt here is one request that we decided
// to make at that moment (the core, src/decide/, asks the consent gate first) and whose answer we read.
import type { WireEvent } from './5-allow-list.js';
import { safeString } from './plain.js';

/** The answer to one attempt. */
export interface Answer {
  /** HTTP status; 0 when no answer came (offline, refused, aborted, timed out). */
  status: number;
  /** The endpoint answered that the project is over its quota: PostHog discards these events. */
  quotaLimited: boolean;
  error?: string;
}

export interface Transport {
  /**
   * One request carrying `batch`; resolves with the endpoint's answer, never rejects. Started only
   * if `mayStart()` still says so once its body is built (a page busy past its deadline sends nothing).
   */
  send(batch: WireEvent[], signal: AbortSignal, mayStart?: () => boolean): Promise<Answer>;
  close(): void;
}

export interface TransportOptions {
  projectKey: string;
  apiHost: string;
  /** posthog-js tried to send something we did not hand it (it should not): it is dropped and said so. */
  refused(name: string): void;
}

/** A request that gets no answer within this is given up (and retried later by the outbox). */
const REQUEST_TIMEOUT_MS = 30_000;

/** posthog-js's private parts this module relies on: all are checked when it loads. */
interface PostHogPrivate {
  __loaded?: boolean;
  version?: string;
  _send_request?: (options: Record<string, unknown>) => void;
}

/** Thrown when the loaded posthog-js is not the one this module was tested with: it is not used. */
export class UnusableTransport extends Error {}

/**
 * One posthog-js instance serves every analytics instance of the page: its request layer needs no
 * project key (each batch carries ours), and posthog-js cannot be fully shut down (its listeners
 * and timers stay), so making one per createAnalytics() would grow without bound.
 */
let shared: Promise<PostHogPrivate> | undefined;
/** Whom to tell if posthog-js tries to capture on its own. */
const listeners = new Set<(name: string) => void>();

async function start() {
  const { posthog } = await import('posthog-js/dist/module.slim.no-external.js');
  // A random token and instance name: nothing on the page can address this instance by a known
  // key (posthog-js reads `window._POSTHOG_REMOTE_CONFIG[token]` and keys storage by name). It is
  // never sent: every batch carries the project key in its events.
  const token = `rerun-analytics-${crypto.getRandomValues(new Uint32Array(2)).join('')}`;
  const client = posthog.init(
    token,
    {
      api_host: 'https://invalid.example', // never used: every request names its own URL
      persistence_name: token,
      // Pinned, because their defaults read the page: `?__posthog_debug=true` (or a
      // `localStorage.ph_debug`) would switch on logging and write `ph_debug`; explicitly false,
      // posthog-js ignores both (and removes its `ph_debug` key).
      debug: false,
      cross_subdomain_cookie: false,
      secure_cookie: true,
      // Identity is ours: posthog-js keeps nothing between page loads (no cookie, no storage).
      persistence: 'memory',
      disable_persistence: true,
      // Everything that would collect on its own, or talk to PostHog beyond our requests, is off.
      autocapture: false,
      capture_pageview: false,
      capture_pageleave: false,
      rageclick: false,
      capture_heatmaps: false,
      capture_dead_clicks: false,
      capture_exceptions: false,
      capture_performance: false,
      disable_session_recording: true,
      disable_surveys: true,
      disable_product_tours: true,
      disable_conversations: true,
      disable_web_experiments: true,
      disable_scroll_properties: true,
      disableDeviceModel: true,
      advanced_disable_flags: true,
      advanced_disable_toolbar_metrics: true,
      disable_external_dependency_loading: true,
      save_referrer: false,
      save_campaign_params: false,
      request_batching: false, // no queue, no timer: we make each request ourselves
      request_headers: {},
      on_request_error: () => undefined, // silent: the outbox records every failure
      // We never call capture(); if anything does, nothing leaves: before_send refuses it, in any
      // browser (its bot filter, which would hide this in automated tests, is off).
      opt_out_useragent_filter: true,
      before_send: (cr) => {
        if (cr) for (const tell of listeners) tell(String(cr.event));
        return null;
      },
    } as Parameters<typeof posthog.init>[1],
    token,
  ) as unknown as PostHogPrivate | undefined;
  if (!client || client.__loaded !== true) throw new UnusableTransport('posthog-js did not initialise');
  return client;
}

/** A chunk that has not come within this never will in this page: its module fetch is pending for good. */
const LOAD_TIMEOUT_MS = 20_000;
/** The chunk did not come within LOAD_TIMEOUT_MS (a request that hangs): this page cannot load it again. */
export class HungTransport extends Error {}

/**
 * Loads posthog-js (once per page). Rejects if the chunk cannot be fetched (try again later), is
 * not usable (UnusableTransport), or hangs (HungTransport: the browser keeps the pending fetch
 * as the module's, so asking again would wait on the same request).
 */
export async function loadTransport(opts: TransportOptions): Promise<Transport> {
  const starting = (shared ??= start());
  starting.catch((err: unknown) => {
    if (!(err instanceof UnusableTransport) && shared === starting) shared = undefined; // a failed fetch: the next attempt loads again
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new HungTransport('the posthog-js chunk did not arrive')), LOAD_TIMEOUT_MS)));
  try {
    await Promise.race([starting, hung]);
  } finally {
    clearTimeout(timer);
  }
  return connect(opts, starting);
}

async function connect(opts: TransportOptions, starting: Promise<PostHogPrivate>): Promise<Transport> {
  const client = await starting;
  // The private part we rely on, checked at every load: a posthog-js without it (a newer
  // version, say) is not used at all. Events then wait in the outbox; config() says why.
  if (typeof client._send_request !== 'function') throw new UnusableTransport(`posthog-js ${safeString(client.version)} has no _send_request`);
  listeners.add(opts.refused);
  const url = `${opts.apiHost}/e/`;
  // `body`: the envelope, gzipped already (the browser's CompressionStream); else posthog-js builds
  // and gzips it from `data` (fflate, on the main thread). Either way the project key goes once per
  // request, and `sent_at`, by which the server corrects clock skew.
  const request = (batch: WireEvent[], body: ArrayBuffer | undefined, extra: Record<string, unknown>) =>
    client._send_request!({
      method: 'POST',
      url,
      ...(body ? { _encodedBody: { contentType: 'text/plain', body, estimatedSize: body.byteLength } } : { data: { api_key: opts.projectKey, batch } }),
      compression: 'gzip-js',
      timestampMode: 'body',
      // posthog-js keeps its own quota table, keyed by batchKey ('events' by default) and shared by
      // every project on its instance: one project's quota answer would silence the others for a
      // minute, with no reason given. Ours (decide/delivery.ts) is per project and audited; a key of our
      // own keeps theirs out of the way. Should it drop a request anyway, it still reports back.
      batchKey: `rerun-analytics ${opts.apiHost}`,
      fireCallbackOnDrop: true,
      ...extra,
    });

  return {
    async send(batch, signal, mayStart = () => true) {
      const envelope = { api_key: opts.projectKey, batch, sent_at: new Date().toISOString() };
      const body = await Promise.resolve().then(() => gzipped(JSON.stringify(envelope))).catch(() => undefined); // else posthog-js gzips it
      if (signal.aborted || !mayStart()) return { status: 0, quotaLimited: false, error: signal.aborted ? 'aborted before it started' : 'not started: the page was busy past its deadline' };
      return new Promise<Answer>((resolve) => {
        // If posthog-js ever stops calling back, the outbox must not wait forever: no answer, retry later.
        const watchdog = setTimeout(() => resolve({ status: 0, quotaLimited: false, error: 'posthog-js gave no answer' }), REQUEST_TIMEOUT_MS + 5000);
        const settle = (answer: Answer) => (clearTimeout(watchdog), resolve(answer));
        try {
          request(batch, body, {
            transport: 'fetch',
            // Ours replaces posthog-js's own signal: aborting it (an opt-out) stops the request,
            // even while posthog-js is still compressing it. No cookies, no Referer.
            // Not keepalive: Chrome does not cancel an aborted keepalive request, and resends it
            // on a connection reset (tested) — an opt-out must stop it. (A closing page sends
            // nothing: it journals what it holds, for a tab that can still ask the gate.)
            // A redirect is not delivery: fetch would follow a 301/302 with a bodiless GET and report
            // its 2xx. Refused here, it is a failed attempt, retried later.
            fetchOptions: { signal: withTimeout(signal, REQUEST_TIMEOUT_MS), credentials: 'omit', referrerPolicy: 'no-referrer', keepalive: false, redirect: 'error' },
            callback: (res: { statusCode?: unknown; json?: unknown; text?: unknown; error?: unknown }) => {
              const status = typeof res?.statusCode === 'number' ? res.statusCode : 0;
              settle({ status, quotaLimited: quotaLimited(res), ...(res?.error ? { error: safeString(res.error).slice(0, 200) } : {}) });
            },
          });
        } catch (err) {
          settle({ status: 0, quotaLimited: false, error: `transport error: ${safeString(err).slice(0, 200)}` });
        }
      });
    },
    close: () => void listeners.delete(opts.refused),
  };
}

/**
 * JSON, gzipped by the browser: encoding and compression run in native code, the compression
 * off the task that built the JSON — instead of posthog-js's replacer-driven JSON, fflate or its
 * checksum in JavaScript (~40 µs an event). Undefined where there is no CompressionStream.
 */
async function gzipped(json: string): Promise<ArrayBuffer | undefined> {
  if (typeof CompressionStream !== 'function') return undefined;
  const gzip = new CompressionStream('gzip');
  const writer = gzip.writable.getWriter();
  void writer.write(new TextEncoder().encode(json)).then(() => writer.close()).catch(() => undefined); // a failure rejects the read below
  return new Response(gzip.readable).arrayBuffer();
}

/** `signal`, also aborted after `ms` (a request with no answer is given up, and retried later). */
function withTimeout(signal: AbortSignal, ms: number): AbortSignal {
  const any = (AbortSignal as { any?: (signals: AbortSignal[]) => AbortSignal }).any;
  return typeof any === 'function' && typeof AbortSignal.timeout === 'function' ? any([signal, AbortSignal.timeout(ms)]) : signal;
}

/** PostHog answers 200 with `{"quota_limited": ["events"]}` when it discards a project's events. */
function quotaLimited(res: { json?: unknown; text?: unknown }): boolean {
  try {
    const body = (res.json ?? (typeof res.text === 'string' && res.text ? JSON.parse(res.text) : undefined)) as { quota_limited?: unknown } | undefined;
    return Array.isArray(body?.quota_limited) && body.quota_limited.includes('events');
  } catch {
    return false;
  }
}
