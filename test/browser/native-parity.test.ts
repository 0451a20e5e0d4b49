// Native parity: the catalog on the wire, hashing, the URL rule, and the WASM bridge.
import { describe, expect, test } from 'vitest';
import { CATALOG, createAnalytics, hashed, rootDomain, type NativeProperty } from '../../src';
import { FIXED_PROPERTIES } from '../../src/5-allow-list';
import vectors from '../fixtures/hash-vectors.json';
import { arrived, audited, openApp, pages, received, sinkUrl, sleep, start } from './helpers';
import { SAMPLES, TEST_EVENTS } from './samples';

const fixed = new Set<string>(FIXED_PROPERTIES);

describe('every catalog event arrives with exactly its declared properties', () => {
  test.each(Object.keys(CATALOG) as (keyof typeof CATALOG)[])('%s', async (name) => {
    const spec = CATALOG[name];
    const { a, key } = start();
    a.record(name, { ...SAMPLES[name] } as never);
    const [e] = await arrived(key, 1);
    const wire = spec.kind === 'Identify' ? '$identify' : spec.kind === 'SetPersonProperties' ? '$set' : name;
    expect(e!.event).toBe(wire);
    const declared = Object.keys(spec.props);
    if (spec.kind === 'Append') {
      const own = Object.keys(e!.properties).filter((k) => !fixed.has(k));
      expect(own.every((k) => declared.includes(k)), own.join()).toBe(true);
      expect(e!.properties.event_id).toBe(1);
      // Every property given (or filled in) arrives, with its value.
      for (const [k, v] of Object.entries(SAMPLES[name])) if (k !== 'application_id' && k !== 'recording_id') expect(e!.properties[k], k).toEqual(v);
    } else {
      expect(e!.properties.$set).toEqual(SAMPLES[name]);
      expect(Object.keys(e!.properties).every((k) => fixed.has(k))).toBe(true);
    }
  });
});

describe('hashing', () => {
  test.each(vectors)('$kind $value → native hash', ({ kind, value, hashed: expected }) => {
    expect(hashed({ [kind]: value } as NativeProperty)).toBe(expected);
  });

  test('bare values pick the type like native: safe integer → Integer, other numbers → Float', () => {
    expect(hashed('my_app')).toBe(vectors.find((v) => v.value === 'my_app')!.hashed);
    expect(hashed(42)).toBe(hashed({ Integer: 42 }));
    expect(hashed(1.5)).toBe(hashed({ Float: 1.5 }));
    expect(hashed(true)).toBe(hashed({ Bool: true }));
    expect(hashed({ Float: 1 })).not.toBe(hashed({ Integer: 1 })); // the explicit shape matters
    expect(hashed({ Integer: -1 })).toMatch(/^[0-9a-f]{64}$/);
    expect(() => hashed({ Integer: 2 ** 60 })).not.toThrow();
    expect(() => hashed(undefined as never)).not.toThrow();
  });

  test('user recordings: application and recording ids are hashed; examples are sent in clear', async () => {
    const { a, key } = start();
    a.record('open_recording', { ...SAMPLES.open_recording, application_id: 'my_app', recording_id: 'rec-1' });
    a.record('open_recording', { ...SAMPLES.open_recording, application_id: 'rerun_example_dna', recording_id: 'rec-2', app_id_starts_with_rerun_example: false });
    const events = await arrived(key, 2);
    const user = events.find((e) => e.properties.event_id === 1)!.properties;
    const example = events.find((e) => e.properties.event_id === 2)!.properties;
    expect(user).toMatchObject({ application_id: hashed('my_app'), recording_id: hashed('rec-1'), app_id_starts_with_rerun_example: false });
    expect(example).toMatchObject({ application_id: 'rerun_example_dna', recording_id: 'rec-2', app_id_starts_with_rerun_example: true });
  });
});

describe('URL rule', () => {
  test.each([
    ['http://app.rerun.io/x', 'rerun.io'],
    ['https://ReRun.io', 'rerun.io'],
    ['http://localhost:9090/?url=rerun%2Bhttp://example.com', undefined],
    ['http://127.0.0.1:9090', undefined],
    ['rerun.io', undefined],
    ['https://rerun', undefined],
    ['https://a.b.example.co.uk/path?q=1#h', 'co.uk'],
    ['http://[::1]:9090/', undefined],
    ['not a url', undefined],
  ])('rootDomain(%s) = %s', (url, expected) => {
    expect(rootDomain(url)).toBe(expected);
  });

  test('on a 127.0.0.1 page, no location property is sent at all', async () => {
    const { a, key } = start();
    a.record('viewer_started', { ...SAMPLES.viewer_started });
    const [e] = await arrived(key, 1);
    expect(e!.properties).not.toHaveProperty('hashed_root_domain');
    expect(e!.properties).not.toHaveProperty('rerun_url');
  });

  test('on the project\'s own domain: hashed root domain and the page as rerun_url (no query value that is not a rerun.io URL)', async () => {
    const key = `phc_rerun_io_${Date.now()}`;
    const port = new URL(location.href).port;
    const example = 'https://app.rerun.io/examples/dna.rrd';
    const page = await pages.openPage(
      `http://user:pw@app.rerun.io:${port}/test/fixtures/app.html?key=${key}&sink=${encodeURIComponent(sinkUrl)}&url=${encodeURIComponent(example)}&code=oauth-secret#access_token=abc`,
    );
    const href = await pages.pageEval(page, `(async () => {
      await analytics.ready;
      analytics.record('viewer_started', { is_docker: false, is_wsl: false, graphics_adapter_backend: 'webgpu', re_renderer_device_tier: 'x', pixels_per_point: 1, zoom_factor: 1 });
      await analytics.flush();
      return location.href;
    })()`);
    const [e] = await arrived(key, 1);
    await pages.closePage(page);
    expect(e!.properties.hashed_root_domain).toBe(hashed('rerun.io'));
    expect(href).toContain('code=oauth-secret'); // the page really had them…
    expect(e!.properties.rerun_url).toBe(`http://app.rerun.io:${port}/test/fixtures/app.html?url=${encodeURIComponent(example)}`); // …and they did not leave
  });
});

describe('recordNative: the WASM bridge', () => {
  const append = {
    time_utc: '2025-04-03T01:20:10.557958200Z',
    kind: 'Append',
    name: 'load_data_source',
    props: { source_type: { String: 'file' }, file_extension: { String: 'rrd' }, started_successfully: { Bool: true }, event_id: { Integer: 3 } },
  };
  const identify = {
    time_utc: '2025-04-03T01:20:11Z',
    kind: 'Identify',
    name: '$identify',
    props: { features: { String: 'default' }, git_hash: { String: 'abc' }, rerun_version: { String: '0.24.0' }, target: { String: 'wasm32' }, build_date: { String: '2025-04-03' }, debug: { Bool: false }, rerun_workspace: { Bool: false } },
  };
  const setPerson = { time_utc: '2025-04-03T01:20:12+02:00', kind: 'SetPersonProperties', name: '$set', props: { email: { String: 'a@example.com' }, organization_id: { String: 'org' } } };
  const openRecording = {
    time_utc: '2025-04-03T01:20:13.5Z',
    kind: 'Append',
    name: 'open_recording',
    props: {
      app_env: { String: 'web_viewer' },
      application_id: { String: hashed('my_app') }, // native hashes before serialising
      recording_id: { String: 'not-yet-hashed' }, // not a hash: hashed here, never sent in clear
      store_source: { String: 'file' },
      store_version: { String: '0.24.0' },
      app_id_starts_with_rerun_example: { Bool: false },
    },
  };

  test('all three kinds arrive, with time_utc as the timestamp; string or object input', async () => {
    const { a, key } = start();
    a.recordNative(JSON.stringify(append));
    a.recordNative(identify);
    a.recordNative(JSON.stringify(setPerson));
    a.recordNative(openRecording);
    const events = await arrived(key, 4);
    const by = (n: string) => events.find((e) => e.event === n)!;
    expect(by('load_data_source').raw.timestamp).toBe('2025-04-03T01:20:10.557Z');
    expect(by('load_data_source').properties).toMatchObject({ source_type: 'file', file_extension: 'rrd', started_successfully: true });
    expect(by('load_data_source').properties.event_id).toBeTypeOf('number'); // ours, per page load
    expect(by('$identify').raw.timestamp).toBe('2025-04-03T01:20:11.000Z');
    expect(by('$identify').properties.$set).toMatchObject({ features: 'default', debug: false });
    expect(by('$set').raw.timestamp).toBe('2025-04-02T23:20:12.000Z'); // +02:00 in, UTC out
    expect(by('$set').properties.$set).toEqual({ email: 'a@example.com', organization_id: 'org' });
    expect(by('open_recording').properties).toMatchObject({ application_id: hashed('my_app'), recording_id: hashed('not-yet-hashed'), app_id_starts_with_rerun_example: false });
    expect((await audited(() => a.audit(), 'sent', 4)).filter((e) => e.outcome === 'sent')).toHaveLength(4);
  });

  test.each([
    ['not JSON', '{"kind": "Append", ', /not valid JSON/],
    ['an array', '[]', /not a JSON object/],
    ['a number', 42, /not a JSON object/],
    ['null', null, /not a JSON object/],
    ['no name', { ...append, name: undefined }, /"name" is not a string/],
    ['a bad kind', { ...append, kind: 'Delete' }, /"kind" must be one of/],
    ['a kind that does not match the catalog', { ...append, kind: 'Identify' }, /is a Append event, not Identify/],
    ['no time', { ...append, time_utc: undefined }, /time_utc/],
    ['a time that is not RFC 3339', { ...append, time_utc: 'March 7' }, /time_utc/],
    ['props not an object', { ...append, props: [1] }, /"props" is not an object/],
    ['a bare value', { ...append, props: { source_type: 'file', started_successfully: { Bool: true } } }, /not a native value/],
    ['an unknown type tag', { ...append, props: { source_type: { Text: 'file' }, started_successfully: { Bool: true } } }, /not a native value/],
    ['a type the catalog does not declare', { ...append, props: { source_type: { Integer: 1 }, started_successfully: { Bool: true } } }, /is integer, declared string/],
    ['a value that does not match its tag', { ...append, props: { source_type: { String: 1 }, started_successfully: { Bool: true } } }, /must be a string/],
    ['an unknown event', { ...append, name: 'made_up' }, /unknown event/],
    ['a huge string', 'x'.repeat(300_000), /longer than/],
  ])('malformed: %s → dropped with a reason', async (_what, input, reason) => {
    const { a, key } = start();
    expect(() => a.recordNative(input as never)).not.toThrow();
    const [entry] = a.audit();
    expect(entry).toMatchObject({ outcome: 'dropped' });
    expect(entry!.reason).toMatch(reason);
    await a.flush();
    await sleep(50);
    expect((await received(key)).requests).toHaveLength(0);
  });
});

describe('host-declared events', () => {
  const events = TEST_EVENTS;

  test('are validated, allow-listed and disclosed like built-in ones', async () => {
    const { a, key } = start({ events });
    (a.record as (n: string, p: object) => void)('export_clicked', { format: 'csv', rows: 10, secret: 'x' });
    const [e] = await arrived(key, 1);
    expect(e!.properties).toMatchObject({ format: 'csv', rows: 10 });
    expect(e!.properties).not.toHaveProperty('secret');
    expect(a.details()).toContain('export_clicked: Counts exports');
  });

  test.each([
    [{ viewer_started: { kind: 'Append', why: 'x', props: {} } }, /already in the built-in catalog/],
    [{ $mine: { kind: 'Append', why: 'x', props: {} } }, /reserved/],
    [{ mine: { kind: 'Identify', why: 'x', props: {} } }, /kind must be 'Append'/],
    [{ mine: { kind: 'Append', why: '', props: {} } }, /say why/],
    [{ mine: { kind: 'Append', why: 'x', props: { distinct_id: 'string' } } }, /"distinct_id" is reserved/],
    [{ mine: { kind: 'Append', why: 'x', props: { a: 'text' } } }, /has type "text"/],
  ])('a bad declaration throws a TypeError at createAnalytics: %o', (bad, message) => {
    expect(() => createAnalytics({ projectKey: 'k', globalName: false, events: bad as never })).toThrow(message);
  });
});

test('details() lists every catalog event with why it is collected, generated from the catalog', () => {
  const { a } = start();
  const text = a.details();
  for (const [name, spec] of Object.entries(CATALOG)) {
    expect(text).toContain(`- ${name}: ${spec.why}`);
  }
  expect(text).toContain('hashed unless the application id starts with "rerun_example"');
});

test('in a page that is not a secure context (plain http, not localhost): hashing and delivery work', async () => {
  const key = `phc_lan_${Date.now()}`;
  const port = new URL(location.href).port;
  const page = await pages.openPage(`http://rerun-lan.test:${port}/test/fixtures/app.html?key=${key}&sink=${encodeURIComponent(sinkUrl)}`);
  const result = (await pages.pageEval(page, `(async () => {
    const vectors = ${JSON.stringify(vectors)};
    await analytics.ready;
    analytics.record('open_recording', { application_id: 'my_app', recording_id: 'r', store_source: 'file', store_version: '1' });
    await analytics.flush();
    return {
      secure: isSecureContext,
      subtle: typeof crypto.subtle,
      hashes: vectors.map((v) => rerun.hashed({ [v.kind]: v.value }) === v.hashed),
    };
  })()`)) as { secure: boolean; subtle: string; hashes: boolean[] };
  const [e] = await arrived(key, 1);
  await pages.closePage(page);
  expect(result.secure).toBe(false);
  expect(result.subtle).toBe('undefined');
  expect(result.hashes).toEqual(vectors.map(() => true));
  expect(e!.properties).toMatchObject({ application_id: hashed('my_app'), hashed_root_domain: hashed('rerun-lan.test') });
  expect(e!.properties).not.toHaveProperty('rerun_url');
});
