// The bench page: this module and posthog-js (its default entry, the anchor) in one page, built
// for production. `npm run bench` (bench/bench.test.ts) drives it from Node. What the page
// itself measures is exposed as globalThis.bench.

// Counted from the start, before any module code runs (for the create → shutdown cycles).
import { watchOpenHandles } from './open-handles.ts';
const openHandles = watchOpenHandles();

// The package as npm ships it: `npm run bench` aliases this to the packed dist (tsconfig paths: src, for types).
const { createAnalytics } = await import('re-analytics-web');
const { default: posthog } = await import('posthog-js');

const sink = new URLSearchParams(location.search).get('sink')!;
const tick = () => new Promise((r) => setTimeout(r, 0));
const props = () => ({ source_type: 'file', file_extension: 'rrd', started_successfully: true });
const recording = (i: number) => ({ application_id: `my_app_${i % 7}`, recording_id: `rec-${i}`, store_source: 'file', store_version: '0.24.0', rust_version: '1.84.0' });

/** Median cost per call in ns: `samples` timings of `batch` calls each, a task between samples. */
async function perCall(call: () => void, batch: number, samples: number): Promise<number> {
  const ns: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) call();
    ns.push(((performance.now() - t0) * 1e6) / batch);
    await tick();
  }
  ns.sort((a, b) => a - b);
  return ns[Math.floor(ns.length / 2)]!;
}

const ours = (key: string, extra = {}) => createAnalytics({ projectKey: key, apiHost: sink, force: true, globalName: false, ...extra });
let anchorReady = false;
function anchor() {
  if (!anchorReady) {
    // posthog-js as a page would use it: its defaults, but pointed at the local endpoint, with its
    // bot filter off (this browser is headless) and its rate limiter out of the way (it would
    // make capture() return early, which is cheaper and not what we compare).
    posthog.init('phc_anchor', { api_host: sink, opt_out_useragent_filter: true, rate_limiting: { events_per_second: 1e9, events_burst_limit: 1e9 } });
    anchorReady = true;
  }
  return posthog;
}

const bench = {
  crossOriginIsolated,
  async hotPath() {
    const a = ours('phc_hot', { flushIntervalMs: 60_000, apiHost: 'http://127.0.0.1:9' });
    await a.ready;
    const record = await perCall(() => a.record('load_data_source', props()), 500, 400);
    await a.shutdown();
    const p = anchor();
    const capture = await perCall(() => p.capture('load_data_source', props()), 20, 200);
    return { record, capture };
  },
  /** Record `n` events, `perTick` per task, with consent on, and let delivery settle. */
  async recordMany(key: string, n: number, perTick: number) {
    const a = ours(key);
    await a.ready;
    for (let i = 0; i < n; i += perTick) {
      for (let j = 0; j < perTick; j++) a.record('load_data_source', props());
      await tick();
    }
    await a.flush();
    await a.shutdown();
  },
  async captureMany(n: number, perTick: number) {
    const p = anchor();
    for (let i = 0; i < n; i += perTick) {
      for (let j = 0; j < perTick; j++) p.capture('load_data_source', props());
      await tick();
    }
    await new Promise((r) => setTimeout(r, 4000)); // its queue flushes every 3 s
  },
  async cycles(n: number) {
    const before = openHandles();
    for (let i = 0; i < n; i++) {
      const a = ours(`phc_cycle_${i}`, { flushIntervalMs: 60_000 });
      a.record('settings-opened');
      await a.shutdown();
    }
    await new Promise((r) => setTimeout(r, 500));
    const after = openHandles();
    return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]]));
  },
  /** Frames, before the trace: an instance with posthog-js loaded and the lock held. */
  async prepareBurst(key: string) {
    const a = ours(key, { flushIntervalMs: 60_000 });
    a.record('settings-opened');
    await a.flush();
    (globalThis as { burstInstance?: typeof a }).burstInstance = a;
  },
  /** Frames, warm: a first burst of 1000 in this page (its code compiled, its heap grown), then an instance for the traced one. */
  async prepareWarm(key: string) {
    await bench.prepareBurst(`${key}_warm`);
    await bench.burst(1000);
    await bench.prepareBurst(key);
  },
  /**
   * Frames, traced: `n` open_recording in one host task, then flush() until the endpoint
   * answered. n = 0: the baseline. The host's task is marked (the trace finds it by the mark);
   * returns how long its loop of record() calls took.
   */
  async burst(n: number) {
    const a = (globalThis as { burstInstance?: ReturnType<typeof ours> }).burstInstance!;
    await new Promise((r) => setTimeout(r, 300));
    performance.mark('host-task');
    const t0 = performance.now();
    for (let i = 0; i < n; i++) a.record('open_recording', recording(i));
    const loop = performance.now() - t0;
    await a.flush();
    await a.shutdown();
    return loop;
  },
  /**
   * The least an event costs to keep and send, whoever does it (µs an event, a fresh page's first
   * run, then again): cloned into IndexedDB and out again (two structured clones) and written as
   * JSON for the wire — 1000 entries shaped like the outbox's.
   */
  floor() {
    const entries = Array.from({ length: 1000 }, (_, i) => ({ uuid: `0190c7a0-1234-7${String(i).padStart(3, '0')}-8000-000000000000`, projectKey: 'phc_floor', apiHost: sink, kind: 'Append', name: 'open_recording', props: { application_id: `${i}`.padStart(64, 'a'), recording_id: `${i}`.padStart(64, 'b'), store_source: 'file', store_version: '0.24.0', rust_version: '1.84.0', app_env: 'web_viewer' }, at: Date.now(), queuedAt: Date.now(), distinctId: 'x'.repeat(21), sessionId: 'y'.repeat(21), eventId: i, bytes: 600, cut: 0 }));
    const once = () => {
      const t0 = performance.now();
      JSON.stringify(structuredClone(structuredClone(entries)));
      return ((performance.now() - t0) * 1000) / entries.length;
    };
    return { cold: once(), warm: (once(), once()) };
  },
  /** The anchor: `n` capture() in one task, then long enough for its batch (every 3 s) to leave. */
  prepareAnchor() {
    anchor();
  },
  async burstAnchor(n: number) {
    const p = anchor();
    await new Promise((r) => setTimeout(r, 300));
    performance.mark('host-task');
    for (let i = 0; i < n; i++) p.capture('open_recording', recording(i));
    await new Promise((r) => setTimeout(r, 4000));
  },
  async sparseOurs(key: string) {
    const a = ours(key);
    a.record('settings-opened');
    await a.flush();
    await a.shutdown();
  },
  sparseAnchor() {
    anchor().capture('settings-opened');
  },
  /** Cross-tab: this tab watches for the next "off" (the time it heard it is kept in `offAt`). */
  async watchOff(key: string) {
    const a = ours(key);
    await a.ready;
    const g = globalThis as { offAt?: Promise<number> };
    g.offAt = new Promise((resolve) => a.subscribe((s) => s.reason === 'user-opted-out' && resolve(performance.timeOrigin + performance.now())));
  },
  /** Cross-tab: this tab opts in, then out; returns when it asked (same clock as offAt). */
  async optOut(key: string) {
    const a = ours(key);
    await a.enable();
    const t = performance.timeOrigin + performance.now();
    await a.disable();
    await a.shutdown();
    return t;
  },
};
Object.assign(globalThis, { bench });
