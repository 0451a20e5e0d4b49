// A local stand-in for PostHog's capture endpoint. It decodes exactly what posthog-js sends
// (gzip, base64 or plain JSON; batch or single event; fetch or sendBeacon) and keeps it in
// memory so tests and the demo can read what really arrived. It never forwards anything.
import { gunzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedEvent {
  api_key: string;
  event: string;
  properties: Record<string, unknown>;
  /** Every top-level key of the event as it arrived (event, properties, uuid, timestamp, $set, …). */
  raw: Record<string, unknown>;
  /** What the browser itself said about the page (headers), so a scan can look for it in the payload. */
  page: { origin?: string; referer?: string; userAgent?: string; cookie?: string };
  /** When it arrived (ms since the epoch). */
  at: number;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  /** The project key(s) the request carried, when it could be decoded. */
  keys: string[];
  /** The status the sink answered; a failed request's events are not kept (the server refused them). */
  status: number;
  /** How many events it carried, and when it arrived (ms since the epoch). */
  events: number;
  at: number;
  /** Bytes on the wire: the body as sent (compressed), and the URL's path and query. */
  bytes: number;
  url: string;
  error?: string;
}

/** Fault injection for the next N capture requests of a key (POST /__sink/fail?key=…&count=…&…). */
interface Fault {
  count: number;
  /** Answer with this status (default 503); the events are not kept (the server refused them). */
  status: number;
  /** Wait this long before answering (the request is in flight meanwhile). */
  delayMs: number;
  /** Reset the connection instead of answering. */
  reset: boolean;
  /** Answer 200 with PostHog's quota answer; the events are discarded, as PostHog does. */
  quota: boolean;
  /** A Retry-After header (seconds) on the answer. */
  retryAfter?: string;
  /** Keep the events as they arrive, whatever the answer (a slow answer to a request the server has). */
  keep: boolean;
  /** Answer this redirect (301, 302, 307, 308) to a URL of the sink that answers 200 to anything; the events are not kept. */
  redirect?: number;
}

export interface CaptureSink {
  /** Node-style handler; answers false when the request is not the sink's. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  events: ReceivedEvent[];
  requests: RequestLogEntry[];
  /** Events whose uuid had already arrived: the server keeps one (it deduplicates on uuid). */
  duplicates: ReceivedEvent[];
}

const CAPTURE_PATHS = ['/e/', '/i/v0/e/', '/batch/', '/capture/', '/track/'];

/** Turns one request body into the list of events it carries. */
export function decodeCaptureBody(query: URLSearchParams, body: Buffer): Record<string, unknown>[] {
  let text: string;
  const compression = query.get('compression');
  if (compression === 'gzip-js' || compression === 'gzip' || (body[0] === 0x1f && body[1] === 0x8b)) {
    text = gunzipSync(body).toString('utf8');
  } else {
    text = body.toString('utf8');
    if (text.startsWith('data=')) {
      const data = new URLSearchParams(text).get('data') ?? '';
      text = compression === 'base64' ? Buffer.from(data, 'base64').toString('utf8') : data;
    } else if (compression === 'base64') {
      text = Buffer.from(text, 'base64').toString('utf8');
    }
  }
  const parsed = JSON.parse(text) as unknown;
  const list = Array.isArray(parsed) ? parsed : [parsed];
  const events: Record<string, unknown>[] = [];
  for (const item of list as Record<string, unknown>[]) {
    if (Array.isArray(item.batch)) {
      for (const e of item.batch as Record<string, unknown>[]) events.push({ api_key: item.api_key, ...e });
    } else {
      events.push(item);
    }
  }
  return events;
}

/** The project key of a decoded event: the batch's api_key, or the event's token. */
function keyOf(e: Record<string, unknown>): string {
  return String(e.api_key ?? (e.properties as Record<string, unknown> | undefined)?.token ?? '');
}

export function createCaptureSink(): CaptureSink {
  const events: ReceivedEvent[] = [];
  const requests: RequestLogEntry[] = [];
  const duplicates: ReceivedEvent[] = [];
  const seen = new Set<string>();
  const failures = new Map<string, Fault>();

  function handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://sink');
    const path = url.pathname;
    const cors = {
      'access-control-allow-origin': req.headers.origin ?? '*',
      'access-control-allow-credentials': 'true',
      'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '*',
      'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
    };
    if (path.startsWith('/__sink/')) {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, cors).end();
      } else if (path === '/__sink/ok') {
        // Where a redirect fault points: 200 like the endpoint, to any method (a 301/302 turns a POST into a GET).
        req.resume();
        res.writeHead(200, { ...cors, 'content-type': 'application/json' }).end('{"status":1}');
      } else if (req.method === 'POST' && path === '/__sink/fail') {
        const q = url.searchParams;
        failures.set(q.get('key') ?? '', {
          count: Number(q.get('count') ?? 1),
          status: Number(q.get('status') ?? 503),
          delayMs: Number(q.get('delayMs') ?? 0),
          reset: q.get('reset') === '1',
          quota: q.get('quota') === '1',
          ...(q.get('retryAfter') ? { retryAfter: q.get('retryAfter')! } : {}),
          keep: q.get('keep') === '1',
          ...(q.get('redirect') ? { redirect: Number(q.get('redirect')) } : {}),
        });
        res.writeHead(204, cors).end();
      } else if (req.method === 'DELETE') {
        events.length = 0;
        requests.length = 0;
        duplicates.length = 0;
        seen.clear();
        res.writeHead(204, cors).end();
      } else {
        // Filter by project key so parallel tests never see each other's traffic.
        const key = url.searchParams.get('key');
        const body = JSON.stringify({
          events: key ? events.filter((e) => e.api_key === key) : events,
          requests: key ? requests.filter((r) => r.keys.includes(key)) : requests,
          duplicates: key ? duplicates.filter((e) => e.api_key === key) : duplicates,
        });
        res.writeHead(200, { ...cors, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
      }
      return true;
    }
    // Anything posthog-js could ask for: capture, flags, remote config, recordings, surveys.
    const known = CAPTURE_PATHS.includes(path) || /^\/(flags|decide|s|array|static|api)\b/.test(path);
    if (!known) return false;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const entry: RequestLogEntry = { method: req.method ?? '', path, keys: [], status: req.method === 'OPTIONS' ? 204 : 200, events: 0, at: Date.now(), bytes: body.length, url: req.url ?? '' };
      let fault: Fault | undefined;
      if (req.method === 'POST' && CAPTURE_PATHS.includes(path)) {
        try {
          const decoded = decodeCaptureBody(url.searchParams, body);
          entry.events = decoded.length;
          for (const e of decoded) if (!entry.keys.includes(keyOf(e))) entry.keys.push(keyOf(e));
          fault = entry.keys.map((k) => failures.get(k)).find((f) => f && f.count > 0);
          if (fault) {
            fault.count--;
            entry.status = fault.reset ? 0 : fault.quota ? 200 : fault.redirect ? fault.redirect : fault.status;
          }
          if (!fault || (fault.keep && !fault.redirect)) {
            const page = { origin: req.headers.origin, referer: req.headers.referer, userAgent: req.headers['user-agent'], cookie: req.headers.cookie };
            for (const e of decoded) {
              const { api_key: _key, ...raw } = e;
              const got: ReceivedEvent = { api_key: keyOf(e), event: String(e.event), properties: (e.properties ?? {}) as Record<string, unknown>, raw, page, at: entry.at };
              const uuid = String(e.uuid ?? '');
              if (uuid && seen.has(uuid)) duplicates.push(got);
              else events.push(got);
              if (uuid) seen.add(uuid);
            }
          }
        } catch (err) {
          entry.error = String(err);
        }
      } else {
        const token = url.searchParams.get('token') ?? url.searchParams.get('api_key');
        if (token) entry.keys.push(token);
      }
      if (req.method !== 'OPTIONS') requests.push(entry);
      const answer = () => {
        if (fault?.reset) return void req.socket.destroy();
        const headers: Record<string, string> = { ...cors, 'content-type': 'application/json', 'access-control-expose-headers': 'Retry-After' };
        if (fault?.retryAfter) headers['retry-after'] = fault.retryAfter;
        if (fault?.redirect) headers.location = `http://${req.headers.host ?? 'localhost'}/__sink/ok`;
        res.writeHead(entry.status, headers);
        res.end(req.method === 'OPTIONS' ? undefined : fault?.quota ? '{"status":1,"quota_limited":["events"]}' : entry.status === 200 ? '{"status":1}' : '{"error":"injected"}');
      };
      if (fault?.delayMs) setTimeout(answer, fault.delayMs);
      else answer();
    });
    return true;
  }

  return { handle, events, requests, duplicates };
}

/** Starts the sink as its own server (tests use a random port on 127.0.0.1). */
export async function startCaptureSink(port = 0, host = '127.0.0.1'): Promise<{ url: string; sink: CaptureSink; close(): Promise<void> }> {
  const sink = createCaptureSink();
  const server = createServer((req, res) => {
    if (!sink.handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const { port: actual } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${actual}`,
    sink,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Vite plugin: the sink inside the dev server, same origin as the demo (`npm start`). */
export function captureSinkPlugin(): { name: string; configureServer(server: { middlewares: { use(fn: (req: IncomingMessage, res: ServerResponse, next: () => void) => void): void } }): void } {
  const sink = createCaptureSink();
  return {
    name: 'rerun-capture-sink',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        if (!sink.handle(req, res)) next();
      });
    },
  };
}
