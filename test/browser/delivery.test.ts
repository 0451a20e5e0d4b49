// The spine, end to end: record → validate → gate → outbox → allow-list → posthog-js → sink.
import { describe, expect, test } from 'vitest';
import { arrived, audited, received, sleep, start, waitFor } from './helpers';
import { SAMPLES } from './samples';

const FIXED = ['distinct_id', 'session_id', '$geoip_disable'];

describe('delivery', () => {
  test('an event arrives with exactly its declared properties plus the fixed keys', async () => {
    const { a, key } = start();
    a.record('load_data_source', { ...SAMPLES.load_data_source });
    const [e] = await arrived(key, 1);
    const config = await a.config();
    expect(e!.event).toBe('load_data_source');
    expect(Object.keys(e!.properties).sort()).toEqual([...FIXED, 'event_id', 'source_type', 'file_extension', 'started_successfully'].sort());
    expect(e!.properties).toMatchObject({
      ...SAMPLES.load_data_source,
      distinct_id: config.analyticsId,
      session_id: config.sessionId,
      $geoip_disable: true,
      event_id: 1,
    });
    // Top level: nothing beside the four keys (no $set_once with initial URL/referrer).
    expect(Object.keys(e!.raw).sort()).toEqual(['event', 'properties', 'timestamp', 'uuid']);
  });

  test('the audit\'s sent properties equal what the endpoint received', async () => {
    const { a, key } = start();
    a.record('viewer_started', { ...SAMPLES.viewer_started });
    a.record('settings-opened');
    a.record('$identify', { ...SAMPLES.$identify });
    const events = await arrived(key, 3);
    const sent = (await audited(() => a.audit(), 'sent', 3)).filter((x) => x.outcome === 'sent');
    expect(sent).toHaveLength(3);
    for (const entry of sent) {
      const match = events.find((e) => e.event === entry.name && e.raw.uuid === entry.uuid);
      expect(match, entry.name).toBeDefined();
      expect(entry.properties).toEqual(match!.properties);
    }
  });

  test('session_id is fixed per page load; event_id counts Append events from 1', async () => {
    const { a, key } = start();
    a.record('settings-opened');
    a.record('$identify', { ...SAMPLES.$identify });
    a.record('help-button-clicked');
    a.record('$set', { ...SAMPLES.$set });
    a.record('settings-opened');
    const events = await arrived(key, 5);
    const { sessionId } = await a.config();
    expect(new Set(events.map((e) => e.properties.session_id))).toEqual(new Set([sessionId]));
    const appends = events.filter((e) => !e.event.startsWith('$')).map((e) => e.properties.event_id).sort();
    expect(appends).toEqual([1, 2, 3]);
    for (const e of events.filter((e) => e.event.startsWith('$'))) expect(e.properties).not.toHaveProperty('event_id');

    // A second instance is a new "page load": a new session, its own counter.
    const other = start();
    other.a.record('settings-opened');
    const [o] = await arrived(other.key, 1);
    expect(o!.properties.session_id).not.toBe(sessionId);
    expect(o!.properties.event_id).toBe(1);
  });

  test('Identify goes out as $identify with person properties (and metadata) in $set only', async () => {
    const { a, key } = start();
    await a.setMetadata({ team: 'vision', seats: 3 });
    a.record('$identify', { ...SAMPLES.$identify });
    const [e] = await arrived(key, 1);
    expect(e!.event).toBe('$identify');
    expect(e!.properties.$set).toEqual({ ...SAMPLES.$identify, team: 'vision', seats: 3 });
    expect(Object.keys(e!.properties).sort()).toEqual([...FIXED, '$set'].sort());
    expect(e!.raw).not.toHaveProperty('$set_once');
  });

  test('SetPersonProperties goes out as $set with only its declared keys', async () => {
    const { a, key } = start();
    await a.setMetadata({ team: 'vision' });
    a.record('$set', { ...SAMPLES.$set, nickname: 'x' } as never);
    const [e] = await arrived(key, 1);
    expect(e!.event).toBe('$set');
    expect(e!.properties.$set).toEqual(SAMPLES.$set);
    await a.flush(); // the answer has been read
    expect(a.audit().at(-1)).toMatchObject({ outcome: 'sent', reason: 'removed undeclared properties: nickname' });
  });

  test('app_env is filled in from the options where the catalog has it', async () => {
    const { a, key } = start({ appEnv: 'web_test' });
    a.record('viewer_started', { ...SAMPLES.viewer_started });
    const [e] = await arrived(key, 1);
    expect(e!.properties.app_env).toBe('web_test');
  });

  test('events are batched by the outbox and handed over together at the flush', async () => {
    const { a, key } = start({ flushIntervalMs: 60_000 });
    for (let i = 0; i < 5; i++) a.record('settings-opened');
    await sleep(200);
    expect((await received(key)).events).toHaveLength(0); // still waiting in the outbox
    await a.flush();
    const events = await arrived(key, 5);
    expect((await received(key)).requests).toHaveLength(1); // together
    expect(events.map((e) => e.properties.event_id).sort()).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('bad input is dropped with a reason, never thrown', () => {
  test('unknown events, wrong types, missing properties and junk', async () => {
    const { a, key } = start();
    const junk: unknown[][] = [
      ['no_such_event', {}],
      ['load_data_source', { source_type: 1, started_successfully: true }],
      ['load_data_source', { source_type: 'file' }],
      ['viewer_started', { ...SAMPLES.viewer_started, zoom_factor: Number.NaN }],
      ['settings-opened', 'not an object'],
      ['settings-opened', [1, 2]],
      [42, {}],
      [Symbol('x'), {}],
      [{ toString: () => { throw new Error('evil'); } }, {}],
      ['load_data_source', { source_type: 'x'.repeat(40_000), started_successfully: true }],
    ];
    for (const [name, props] of junk) expect(() => (a.record as (n: unknown, p: unknown) => void)(name, props)).not.toThrow();
    const audit = a.audit();
    expect(audit).toHaveLength(junk.length);
    expect(audit.every((e) => e.outcome === 'dropped' && typeof e.reason === 'string' && e.reason.length > 0)).toBe(true);
    expect(audit[0]!.reason).toMatch(/unknown event/);
    expect(audit[1]!.reason).toMatch(/source_type.*string/);
    expect(audit[2]!.reason).toMatch(/required property "started_successfully"/);
    expect(audit[3]!.reason).toMatch(/finite/);
    expect(audit[9]!.reason).toMatch(/longer than/);
    await a.flush();
    await sleep(200);
    expect((await received(key)).requests).toHaveLength(0);
  });

  test('null and undefined mean "leave the property out"', async () => {
    const { a, key } = start();
    a.record('load_data_source', { source_type: 'file', file_extension: null, file_source: undefined, started_successfully: false });
    const [e] = await arrived(key, 1);
    expect(e!.properties).not.toHaveProperty('file_extension');
    expect(e!.properties).not.toHaveProperty('file_source');
  });
});

describe('audit ring buffer', () => {
  test('keeps at most auditCapacity entries, oldest first', async () => {
    const { a } = start({ auditCapacity: 5 });
    for (let i = 0; i < 12; i++) a.record(`unknown_${i}`);
    const audit = a.audit();
    expect(audit).toHaveLength(5);
    expect(audit.map((e) => e.name)).toEqual(['unknown_7', 'unknown_8', 'unknown_9', 'unknown_10', 'unknown_11']);
  });

  test('entries are copies: editing them changes nothing', async () => {
    const { a } = start();
    a.record('nope');
    a.audit()[0]!.reason = 'edited';
    expect(a.audit()[0]!.reason).toMatch(/unknown event/);
  });
});

test('waitFor helper fails when the condition never holds (the helper itself can fail)', async () => {
  await expect(waitFor(() => 1, (v) => v === 2, 100)).rejects.toThrow(/timed out/);
});

test('anything posthog-js sends on its own is dropped by the allow-list, with a reason', async () => {
  const { a, key } = start();
  a.record('settings-opened');
  await arrived(key, 1); // the transport is loaded now
  await audited(() => a.audit(), 'sent', 1); // and its answer read
  const { posthog } = await import('posthog-js/dist/module.slim.no-external.js');
  const names = Object.keys(posthog).filter((k) => k.startsWith('rerun-analytics-'));
  expect(names).toHaveLength(1); // one posthog-js instance serves every analytics instance of the page
  const ours = (posthog as unknown as Record<string, { capture(name: string, props?: object): unknown }>)[names[0]!]!;
  ours.capture('$pageview', { $current_url: location.href });
  ours.capture('settings-opened'); // even a catalog name, if it did not come through record()
  await sleep(300);
  expect((await received()).events.filter((e) => e.event === '$pageview' || e.properties.$current_url)).toHaveLength(0);
  expect((await received(key)).events).toHaveLength(1);
  expect(a.audit().slice(-2)).toEqual([
    expect.objectContaining({ name: '$pageview', outcome: 'dropped', reason: 'not recorded by the host (made by posthog-js)' }),
    expect.objectContaining({ name: 'settings-opened', outcome: 'dropped', reason: 'not recorded by the host (made by posthog-js)' }),
  ]);
});
