// A bridge for viewer builds already shipped, until the viewer calls recordNative() itself.
//
// Their WASM builds a PostHog batch per event and POSTs it with the browser's fetch straight to
// tel.rerun.io — its log-in code too, with the user's email, even where analytics is compiled
// out — so no opt-out reaches it. Installed by the host (opt-in), this takes exactly those
// requests and hands their body to recordNative(): the stored opt-out, every tab, GPC/DNT,
// automation, the embedder policy, the allow-list and the audit then apply to them. It answers
// as the endpoint would, so the viewer neither logs an error nor retries. Every other request
// goes to the real fetch untouched: the same arguments, the same Request, body, headers, signal.
//
// This file, and the devtools handle, are the only places the module touches a global (never
// off the browser).
import { inBrowser } from './in-browser.js';

/** Where shipped viewers (re_analytics' web pipeline, re_auth) send their PostHog batches. */
export const VIEWER_TELEMETRY_URL = 'https://tel.rerun.io/api/pog';

export interface TelemetryGuard {
  /** Puts the page's fetch back (or, if something wrapped it since, stops taking anything). */
  uninstall(): void;
}

type Fetch = typeof globalThis.fetch;
interface Installed {
  guard: TelemetryGuard;
  target: string;
  take(body: string): void;
}

/** One guard per page: installing again only changes where the taken batches go. */
let installed: Installed | undefined;

/**
 * Takes what the viewer's WASM POSTs to `url` (default VIEWER_TELEMETRY_URL) and feeds it to
 * `analytics.recordNative`. Never throws into the viewer.
 */
export function guardViewerTelemetry(analytics: { recordNative(event: string): void }, options: { url?: string } = {}): TelemetryGuard {
  if (!inBrowser()) return { uninstall: () => undefined }; // server-side: the host's fetch is not ours to touch
  const target = normalize(options.url ?? VIEWER_TELEMETRY_URL) ?? VIEWER_TELEMETRY_URL;
  const take = (body: string) => analytics.recordNative(body);
  if (installed) {
    installed.target = target;
    installed.take = take;
    return installed.guard;
  }
  const original: Fetch = globalThis.fetch;
  let active = true;
  const state: Installed = {
    target,
    take,
    guard: {
      uninstall() {
        if (!active) return;
        active = false;
        if (globalThis.fetch === guarded) globalThis.fetch = original;
        if (installed === state) installed = undefined;
      },
    },
  };
  function guarded(this: unknown, ...args: Parameters<Fetch>): ReturnType<Fetch> {
    if (active && isTelemetry(args, state.target)) return answer(args, state);
    return Reflect.apply(original, this, args) as ReturnType<Fetch>;
  }
  globalThis.fetch = guarded as Fetch;
  installed = state;
  return state.guard;
}

/** A POST to the telemetry URL? Decided from the URL and method only: the body is not touched. */
function isTelemetry([input, init]: Parameters<Fetch>, target: string): boolean {
  try {
    const request = asRequest(input);
    const method = String(init?.method ?? request?.method ?? 'GET').toUpperCase();
    const url = request ? request.url : input instanceof URL ? input.href : String(input);
    return method === 'POST' && normalize(url) === target;
  } catch {
    return false; // anything odd is not ours: it goes to the real fetch as it is
  }
}

const requestUrl = typeof Request === 'undefined' ? undefined : Object.getOwnPropertyDescriptor(Request.prototype, 'url')?.get;
const requestMethod = typeof Request === 'undefined' ? undefined : Object.getOwnPropertyDescriptor(Request.prototype, 'method')?.get;

/** A Request, recognised by its brand (the platform's own getter accepts it), not `instanceof`: one made in another realm (an iframe) is one too. */
function asRequest(input: unknown): { url: string; method: string; signal?: AbortSignal; text(): Promise<string> } | undefined {
  if (typeof input !== 'object' || input === null || !requestUrl || !requestMethod) return undefined;
  try {
    const url = Reflect.apply(requestUrl, input, []) as string;
    const method = Reflect.apply(requestMethod, input, []) as string;
    const r = input as Request;
    return { url, method, signal: r.signal, text: () => r.text() };
  } catch {
    return undefined; // not a Request
  }
}

/** Reads the body, hands it over, and answers 200 as the endpoint does (after an abort: as fetch does). */
async function answer([input, init]: Parameters<Fetch>, state: Installed): Promise<Response> {
  const request = asRequest(input);
  const signal = init?.signal ?? request?.signal;
  if (signal?.aborted) throw signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
  try {
    const body = init?.body !== undefined && init.body !== null ? await new Response(init.body).text() : request ? await request.text() : '';
    state.take(body);
  } catch {
    state.take(''); // unreadable: recorded as malformed, so the audit still says something came
  }
  return new Response('{"status":1}', { status: 200, headers: { 'content-type': 'application/json' } });
}

/**
 * The URL as the browser will reach it, for comparing: origin and path, without query or
 * fragment; the host without its trailing dot (`tel.rerun.io.` is the same host); the path with
 * its percent-escapes decoded (`/api/%70og` is `/api/pog` to the server).
 */
function normalize(url: string): string | undefined {
  try {
    const u = new URL(url, globalThis.location?.href);
    const host = u.host.replace(/\.+(?=:|$)/, '');
    let path = u.pathname;
    try {
      path = decodeURIComponent(path);
    } catch {
      // a malformed escape: compared as it is
    }
    return `${u.protocol}//${host}${path}`;
  } catch {
    return undefined;
  }
}
