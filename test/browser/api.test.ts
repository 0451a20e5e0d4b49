// The public surface: option errors throw a TypeError at the call; nothing else ever throws.
import { describe, expect, test } from 'vitest';
import { createAnalytics } from '../../src';
import { arrived, sinkUrl, start, waitFor } from './helpers';

describe('createAnalytics options', () => {
  test.each([
    [{}, /projectKey is required/],
    [{ projectKey: '  ' }, /projectKey is required/],
    [{ projectKey: 'k', apiHost: 'not a url' }, /apiHost must be an http\(s\) URL/],
    [{ projectKey: 'k', apiHost: 'ftp://x.example' }, /apiHost/],
    [{ projectKey: 'k', flushIntervalMs: 0 }, /flushIntervalMs must be a positive number/],
    [{ projectKey: 'k', flushIntervalMs: Number.POSITIVE_INFINITY }, /flushIntervalMs/],
    [{ projectKey: 'k', auditCapacity: 1.5 }, /auditCapacity must be a positive integer/],
    [{ projectKey: 'k', auditCapacity: -1 }, /auditCapacity/],
    [{ projectKey: 'k', globalName: '' }, /globalName/],
    [{ projectKey: 'k', force: 'yes' }, /force must be a boolean/],
    [{ projectKey: 'k', forse: true }, /unknown option "forse"/],
  ])('%o throws a TypeError', (options, message) => {
    expect(() => createAnalytics(options as never)).toThrow(TypeError);
    expect(() => createAnalytics(options as never)).toThrow(message);
  });

  test('defaults are applied and the global is installed (and removed on shutdown)', async () => {
    const a = createAnalytics({ projectKey: 'phc_defaults', apiHost: sinkUrl, force: true });
    expect((globalThis as Record<string, unknown>).rerunAnalytics).toBe(a);
    await a.shutdown();
    expect((globalThis as Record<string, unknown>).rerunAnalytics).toBeUndefined();
  });
});

describe('never throws into the host', () => {
  test('odd arguments and throwing listeners are absorbed', async () => {
    const { a } = start();
    const heard: boolean[] = [];
    a.subscribe(() => {
      throw new Error('host bug');
    });
    a.subscribe((s) => heard.push(s.enabled));
    await a.ready;
    await expect(a.setEnabled('no' as never)).resolves.toBeUndefined(); // not `true`: off
    expect(a.isEnabled()).toBe(false);
    await expect(a.setMetadata(null as never)).resolves.toBeUndefined();
    await expect(a.setMetadata({ ok: 'x', bad: { nested: 1 } as never, nan: Number.NaN })).resolves.toBeUndefined();
    await expect(a.setMetadata('team=vision' as never)).resolves.toBeUndefined();
    expect((await a.config()).metadata).toEqual({ ok: 'x' });
    expect(heard).toEqual([true, false]);
    // What was not kept is said, in the audit (not silently ignored).
    expect(a.audit().filter((e) => e.name === '(metadata)').map((e) => e.reason)).toEqual([
      'setMetadata: not an object of values (got null)',
      'setMetadata: "bad" not kept: a value must be a string (≤ 1024 characters), a finite number or a boolean',
      'setMetadata: "nan" not kept: a value must be a string (≤ 1024 characters), a finite number or a boolean',
      'setMetadata: not an object of values (got a string)',
    ]);
  });

  test('record() only queues, bounded: past 1000 within one tick the rest are counted, in one audit entry', async () => {
    const { a } = start({ apiHost: 'http://127.0.0.1:9', flushIntervalMs: 60_000 });
    await a.ready;
    for (let i = 0; i < 1010; i++) a.record('settings-opened');
    const audit = a.audit();
    expect(audit).toEqual([expect.objectContaining({ name: '(10 events)', outcome: 'dropped', reason: 'too many at once: more than 1000 recorded within one tick' })]);
    await waitFor(() => a.config(), (c) => c.delivery.pending === 1000);
  });

  test('props are copied at record(): changing them afterwards changes nothing', async () => {
    const { a, key } = start();
    const props = { source_type: 'file', started_successfully: true };
    a.record('load_data_source', props);
    props.source_type = 'changed';
    (props as Record<string, unknown>).started_successfully = 'not a bool';
    const [e] = await arrived(key, 1);
    expect(e!.properties).toMatchObject({ source_type: 'file', started_successfully: true });
  });

  test('after shutdown, record() drops with a reason', async () => {
    const { a } = start();
    await a.shutdown();
    a.record('settings-opened');
    expect(a.audit().at(-1)).toMatchObject({ outcome: 'dropped', reason: 'shut down' });
  });

  test('after shutdown, isEnabled() is false (control: true before)', async () => {
    const { a } = start();
    await a.ready;
    expect(a.isEnabled()).toBe(true);
    await a.shutdown();
    expect(a.isEnabled()).toBe(false);
  });
});
