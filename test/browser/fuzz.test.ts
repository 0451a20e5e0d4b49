// Property-based fuzzing (fast-check) of every entry point a host or a page can reach, in real
// Chromium: record, recordNative, setMetadata, the options. 10 000 cases each. Junk of every kind
// — NaN, ±Infinity, -0, BigInt, symbols, functions, cyclic and deep objects, throwing getters,
// hostile proxies, 1 MB strings, lone surrogates, `__proto__` / `constructor` keys — and each
// run checks: nothing throws, nothing pollutes a prototype, every accepted event makes a payload
// that is valid JSON under the per-event cap, every rejected one is in the audit.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createAnalytics } from '../../src';
import { MAX_EVENT_BYTES } from '../../src/2-validate';
import { allowListed } from '../../src/5-allow-list';
import { CATALOG } from '../../src/catalog';
import { CONFIG, EVENTS, LEGACY_OUTBOX, type OutboxEntry } from '../../src/store';
import { SIZE_KEY } from '../../src/core/contract';
import { db, outboxEntries, sinkUrl, start } from './helpers';
import { SAMPLES } from './samples';

const RUNS = 10_000;
const CHUNK = 500; // one tick's worth: judged together, then checked
const CLOSED = 'http://127.0.0.1:9'; // nothing is sent while fuzzing

// ---- junk -----------------------------------------------------------------------------------
const cyclic = fc.constant(null).map(() => {
  const o: Record<string, unknown> = { source_type: 'file' };
  o.self = o;
  return o;
});
const deep = fc.integer({ min: 10, max: 3000 }).map((n) => {
  let o: Record<string, unknown> = { v: 1 };
  for (let i = 0; i < n; i++) o = { o };
  return o;
});
const throwingGetter = fc.constantFrom('source_type', 'name', 'props', 'kind', 'time_utc', 'team').map((key) =>
  Object.defineProperty({}, key, {
    enumerable: true,
    get() {
      throw Object.create(null); // not even printable
    },
  }),
);
const hostileProxy = fc.constant(null).map(
  () =>
    new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error('ownKeys trap');
        },
        get: () => {
          throw new Error('get trap');
        },
        getPrototypeOf: () => {
          throw new Error('getPrototypeOf trap');
        },
        getOwnPropertyDescriptor: () => {
          throw new Error('descriptor trap');
        },
      },
    ),
);
const megabyte = fc.constant('x'.repeat(1 << 20));
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => `a${String.fromCharCode(c)}b`);
const protoKeyed = fc.constantFrom(
  '{"__proto__": {"polluted": "yes"}}',
  '{"constructor": {"prototype": {"polluted": "yes"}}}',
  '{"source_type": "file", "__proto__": {"String": "x"}, "started_successfully": true}',
  '{"prototype": 1, "toString": "x", "hasOwnProperty": 2}',
).map((json) => JSON.parse(json) as Record<string, unknown>);
const scalar = fc.oneof(
  fc.double(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 2 ** 53, -(2 ** 63)),
  fc.bigInt(),
  fc.constant(Symbol('s')),
  fc.func(fc.anything()),
  fc.string({ unit: 'binary', maxLength: 40 }),
  loneSurrogate,
  fc.boolean(),
  fc.integer(),
  fc.constantFrom(null, undefined, '', 'file', 'rerun_example_x'),
);
const junk = fc.oneof({ weight: 5, arbitrary: scalar }, cyclic, deep, throwingGetter, hostileProxy, megabyte, protoKeyed, fc.anything({ maxDepth: 3 }));
const keys = fc.oneof(fc.constantFrom('source_type', 'file_extension', 'started_successfully', 'application_id', 'rerun_url', 'distinct_id', '$set', '__proto__', 'constructor', 'toString'), fc.string({ maxLength: 12 }));
const names = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...Object.keys(CATALOG)) }, fc.string({ maxLength: 20 }), scalar, hostileProxy);
const sample = (name: unknown): Record<string, unknown> => (typeof name === 'string' && Object.hasOwn(SAMPLES, name) ? { ...SAMPLES[name as keyof typeof SAMPLES] } : {});
/** Valid props for a catalog event, sometimes with one value swapped for junk. */
const propsFor = (name: unknown) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant(null).map(() => sample(name)) },
    fc.tuple(keys, junk).map(([k, v]) => ({ ...sample(name), [k]: v })),
    fc.dictionary(keys, junk, { maxKeys: 6 }),
    junk,
  );
const KINDS = { $identify: 'Identify', $set: 'SetPersonProperties' } as Record<string, string>;
const TAGS = { string: 'String', boolean: 'Bool' } as Record<string, string>;
/** A catalog event in the native serde shape, as the viewer's WASM would send it. */
const nativeSample = fc.constantFrom(...Object.keys(SAMPLES)).map((name) => ({
  time_utc: '2025-04-03T01:20:10.557958200Z',
  kind: KINDS[name] ?? 'Append',
  name,
  props: Object.fromEntries(Object.entries(sample(name)).map(([k, v]) => [k, { [TAGS[typeof v] ?? (Number.isInteger(v) ? 'Integer' : 'Float')]: v }])),
}));

// ---- checks ---------------------------------------------------------------------------------
const prototypeNames = () => [Object.prototype, Array.prototype, Function.prototype].map((p) => Object.getOwnPropertyNames(p).sort().join());
const pristine = prototypeNames();
function notPolluted() {
  expect(prototypeNames()).toEqual(pristine);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.getPrototypeOf({})).toBe(Object.prototype);
}

/** Every accepted event's payload: valid JSON, the same after a round trip, under the cap. */
async function checkPayloads(key: string): Promise<number> {
  const entries = (await outboxEntries()).filter((e) => e.projectKey === key);
  for (const e of entries) {
    const wire = allowListed(e, { team: 'x' });
    const json = JSON.stringify(wire);
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(JSON.parse(json))));
    expect(new TextEncoder().encode(JSON.stringify(wire.properties)).length).toBeLessThanOrEqual(MAX_EVENT_BYTES + 1024);
  }
  await db.transaction([EVENTS, LEGACY_OUTBOX, CONFIG], 'readwrite', (tx) => {
    tx.objectStore(EVENTS).clear();
    tx.objectStore(LEGACY_OUTBOX).clear();
    tx.objectStore(CONFIG).delete(SIZE_KEY);
  });
  return entries.length;
}

/** Runs `calls` (each makes one record call) in chunks; every call ends in the outbox or the audit. */
async function fuzz<T>(arb: fc.Arbitrary<T>, call: (a: ReturnType<typeof start>['a'], value: T) => void) {
  const { a, key } = start({ apiHost: CLOSED, flushIntervalMs: 3_600_000, auditCapacity: RUNS * 2 });
  await a.ready;
  let accepted = 0;
  for (let chunk = 0; chunk < RUNS / CHUNK; chunk++) {
    fc.assert(
      fc.property(arb, (value) => {
        call(a, value); // a throw fails the property, with the shrunk input
      }),
      { numRuns: CHUNK, seed: 1000 + chunk },
    );
    a.audit(); // judged now
    await a.flush();
    accepted += await checkPayloads(key);
    notPolluted();
  }
  const audit = a.audit();
  expect(audit.every((e) => e.outcome === 'dropped' && typeof e.reason === 'string' && e.reason.length > 0)).toBe(true);
  expect(accepted + audit.length).toBe(RUNS); // nothing vanished: each call is accepted or audited
  console.info(`fuzz: ${RUNS} calls, ${accepted} accepted, ${audit.length} dropped with a reason`);
  return { accepted, audit };
}

describe(`fuzzing, ${RUNS} cases per entry point`, () => {
  test('record(name, props)', async () => {
    const { accepted } = await fuzz(
      names.chain((name) => propsFor(name).map((props) => [name, props] as const)),
      (a, [name, props]) => (a.record as (n: unknown, p: unknown) => void)(name, props),
    );
    expect(accepted).toBeGreaterThan(RUNS / 10); // the junk is not all junk: real events were accepted too
  }, 120_000);

  test('recordNative(input)', async () => {
    const tagged = fc.oneof(
      fc.string().map((v) => ({ String: v })),
      junk.map((v) => ({ Float: v })),
      junk.map((v) => ({ Integer: v })),
      fc.boolean().map((v) => ({ Bool: v })),
      junk,
    );
    const nativeEvent = fc.record(
      {
        time_utc: fc.oneof(fc.constantFrom('2025-04-03T01:20:10.557958200Z', '2025-04-03T01:20:11+02:00'), fc.string(), junk),
        kind: fc.oneof(fc.constantFrom('Append', 'Identify', 'SetPersonProperties'), junk),
        name: names,
        props: fc.oneof(fc.dictionary(keys, tagged, { maxKeys: 6 }), junk),
      },
      { requiredKeys: [] },
    );
    const stringify = (e: unknown) => {
      try {
        return JSON.stringify(e);
      } catch {
        return '{';
      }
    };
    const nearlyValid = fc.tuple(nativeSample, keys, tagged).map(([e, k, v]) => ({ ...e, props: { ...e.props, [k]: v } }));
    const input = fc.oneof(
      { weight: 2, arbitrary: nativeSample.map(stringify) },
      nativeSample,
      nearlyValid,
      nearlyValid.map(stringify),
      nativeEvent,
      nativeEvent.map(stringify),
      fc.json(),
      junk,
    );
    const { accepted } = await fuzz(input, (a, value) => a.recordNative(value as string));
    expect(accepted).toBeGreaterThan(RUNS / 10);
  }, 120_000);

  test('setMetadata(props)', async () => {
    const { a } = start({ apiHost: CLOSED, flushIntervalMs: 3_600_000 });
    await a.ready;
    const arb = fc.oneof(fc.dictionary(keys, junk, { maxKeys: 8 }), junk);
    for (let chunk = 0; chunk < RUNS / CHUNK; chunk++) {
      const pending: Promise<void>[] = [];
      fc.assert(
        fc.property(arb, (value) => {
          pending.push(a.setMetadata(value as never)); // never throws…
        }),
        { numRuns: CHUNK, seed: 2000 + chunk },
      );
      await Promise.all(pending); // …nor rejects
      notPolluted();
    }
    const { metadata } = await a.config();
    expect(Object.getPrototypeOf(metadata)).toBe(Object.prototype);
    for (const [k, v] of Object.entries(metadata)) {
      expect(['string', 'number', 'boolean']).toContain(typeof v);
      expect(k.length).toBeLessThanOrEqual(200);
      if (typeof v === 'number') expect(Number.isFinite(v)).toBe(true);
      if (typeof v === 'string') expect(v.length).toBeLessThanOrEqual(1024);
    }
    expect(Object.keys(metadata).length).toBeLessThanOrEqual(64);
  }, 120_000);

  test('createAnalytics(options): a TypeError for anything wrong, never another throw', async () => {
    const option = fc.record(
      {
        projectKey: fc.oneof(fc.constant('phc_fuzz'), junk),
        apiHost: fc.oneof(fc.constant(sinkUrl), fc.constantFrom('javascript:alert(1)', 'ftp://x', '//x', 'http://'), junk),
        flushIntervalMs: fc.oneof(fc.constant(60_000), junk),
        auditCapacity: fc.oneof(fc.constant(10), junk),
        globalName: fc.oneof(fc.constant(false), junk),
        force: fc.oneof(fc.boolean(), junk),
        events: fc.oneof(fc.constant({}), fc.dictionary(names.filter((n) => typeof n === 'string') as fc.Arbitrary<string>, junk, { maxKeys: 3 }), junk),
        surprise: junk,
      },
      { requiredKeys: [] },
    );
    const made: Promise<void>[] = [];
    let created = 0;
    fc.assert(
      fc.property(fc.oneof({ weight: 4, arbitrary: option }, junk), (options) => {
        try {
          const a = createAnalytics(options as never);
          created++;
          made.push(a.shutdown());
        } catch (err) {
          if (!(err instanceof TypeError) || !err.message.startsWith('createAnalytics: ')) throw err;
        }
      }),
      { numRuns: RUNS, seed: 3000 },
    );
    await Promise.all(made);
    notPolluted();
    expect(created).toBeGreaterThan(0); // valid options do get through
    console.info(`fuzz: ${RUNS} option sets, ${created} valid`);
  }, 120_000);
});

test('control: the payload check can fail (an entry the cap would refuse)', () => {
  const e = { kind: 'Append', name: 'x', props: { s: 'é'.repeat(MAX_EVENT_BYTES) }, at: 0, distinctId: 'd', sessionId: 's', uuid: 'u' } as unknown as OutboxEntry;
  expect(new TextEncoder().encode(JSON.stringify(allowListed(e, {}).properties)).length).toBeGreaterThan(MAX_EVENT_BYTES + 1024);
});
