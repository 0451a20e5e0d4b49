// The consent gate in action: held until the stored choice is known, opt-out immediate,
// opt-in without reload, fail closed when storage cannot be read.
import { describe, expect, test } from 'vitest';
import { HOLD_CAPACITY } from '../../src/core';
import { arrived, received, sleep, start, storeConfig } from './helpers';
import { SAMPLES } from './samples';

const storeChoice = (choice: 'enabled' | 'disabled') => storeConfig({ analyticsId: 'stored-id', choice, metadata: {} });

describe('events recorded before the stored choice is known', () => {
  test('are held, then delivered when the stored choice allows', async () => {
    const { a, key } = start();
    a.record('settings-opened'); // synchronously after createAnalytics: storage not read yet
    expect(a.isEnabled()).toBe(false);
    expect(a.audit()).toHaveLength(0); // held, not dropped
    const [e] = await arrived(key, 1);
    expect(e!.properties.distinct_id).toBe((await a.config()).analyticsId);
  });

  test('are dropped, never sent early, when the stored choice is an opt-out', async () => {
    await storeChoice('disabled');
    const { a, key } = start();
    a.record('settings-opened');
    a.record('help-button-clicked');
    await a.ready;
    expect(a.isEnabled()).toBe(false);
    expect(a.audit().map((e) => [e.outcome, e.reason])).toEqual([
      ['dropped', 'user-opted-out'],
      ['dropped', 'user-opted-out'],
    ]);
    await a.flush();
    await sleep(200);
    expect((await received(key)).requests).toHaveLength(0);
  });
});

test('the hold is bounded: past its capacity, events are dropped as too many', async () => {
  await storeChoice('disabled');
  const { a, key } = start({ auditCapacity: 1000 });
  for (let i = 0; i < HOLD_CAPACITY + 10; i++) a.record('settings-opened');
  const tooMany = `too many at once: more than ${HOLD_CAPACITY} recorded before the stored choice was read`;
  expect(a.audit().map((e) => e.reason)).toEqual(Array(10).fill(tooMany));
  await a.ready;
  const reasons = a.audit().map((e) => e.reason);
  expect(reasons).toEqual([...Array(10).fill(tooMany), ...Array(HOLD_CAPACITY).fill('user-opted-out')]);
  await sleep(100);
  expect((await received(key)).requests).toHaveLength(0);
});

describe('opt-out is immediate', () => {
  test('events recorded and then disabled in the same tick never arrive', async () => {
    const { a, key } = start();
    await a.ready;
    a.record('settings-opened');
    a.record('$identify', { ...SAMPLES.$identify });
    const off = a.setEnabled(false);
    await off;
    await a.flush();
    await sleep(300);
    expect((await received(key)).requests).toHaveLength(0);
    expect(a.audit().map((e) => e.reason)).toEqual(['user-opted-out', 'user-opted-out']);
  });

  test('pending events are discarded when setEnabled(false) resolves; nothing more is handed over', async () => {
    const { a, key } = start({ flushIntervalMs: 5000 }); // no pass of its own before the opt-out, however slow the machine
    await a.ready;
    a.record('settings-opened');
    await sleep(50);
    await a.setEnabled(false);
    expect(a.isEnabled()).toBe(false);
    a.record('help-button-clicked');
    await sleep(500);
    await a.flush();
    expect((await received(key)).requests).toHaveLength(0);
    expect(a.audit().map((e) => `${e.name}:${e.outcome}:${e.reason}`)).toEqual([
      'settings-opened:dropped:user-opted-out',
      'help-button-clicked:dropped:user-opted-out',
    ]);
  });

  test('setEnabled(true) starts delivery again without a reload', async () => {
    const { a, key } = start();
    await a.setEnabled(false);
    a.record('settings-opened');
    await a.setEnabled(true);
    expect(a.isEnabled()).toBe(true);
    a.record('help-button-clicked');
    const events = await arrived(key, 1);
    await sleep(150);
    expect((await received(key)).events.map((e) => e.event)).toEqual(['help-button-clicked']);
    expect(events[0]!.event).toBe('help-button-clicked');
    expect((await a.config()).reason).toBe('user-opted-in');
  });

  test('the choice is persisted: a new instance (page load) starts opted out', async () => {
    const first = start();
    await first.a.setEnabled(false);
    const second = start();
    await second.a.ready;
    expect(second.a.isEnabled()).toBe(false);
    expect((await second.a.config()).reason).toBe('user-opted-out');
  });

  test('subscribe hears every change with its reason, and can unsubscribe', async () => {
    const { a } = start();
    const seen: string[] = [];
    const stop = a.subscribe((s) => seen.push(`${s.enabled}:${s.reason}`));
    await a.ready;
    await a.disable();
    await a.enable();
    stop();
    await a.disable();
    expect(seen).toEqual(['true:default', 'false:user-opted-out', 'true:user-opted-in']);
  });
});

describe('fails closed', () => {
  test('when IndexedDB throws, it stays off, says why, and sends nothing', async () => {
    const open = indexedDB.open;
    indexedDB.open = () => {
      throw new DOMException('blocked by test', 'SecurityError');
    };
    try {
      const { a, key } = start();
      a.record('settings-opened');
      await a.ready;
      const config = await a.config();
      expect(config).toMatchObject({ enabled: false, reason: 'storage-unavailable', storage: 'unavailable' });
      a.record('help-button-clicked');
      await a.setEnabled(true); // a choice that cannot be stored does not turn it on
      expect(a.isEnabled()).toBe(false);
      await a.flush();
      await sleep(200);
      expect((await received(key)).requests).toHaveLength(0);
      expect(a.audit().map((e) => e.reason)).toEqual(['storage-unavailable', 'storage-unavailable']);
    } finally {
      indexedDB.open = open;
    }
  });

  test('when IndexedDB never answers, it gives up after a timeout and stays off', async () => {
    const open = indexedDB.open;
    indexedDB.open = () => ({}) as IDBOpenDBRequest; // a request whose callbacks never fire
    try {
      const { a, key } = start();
      a.record('settings-opened');
      const t0 = performance.now();
      await a.ready;
      expect(performance.now() - t0).toBeGreaterThan(2500);
      expect((await a.config()).reason).toBe('storage-unavailable');
      await sleep(100);
      expect((await received(key)).requests).toHaveLength(0);
    } finally {
      indexedDB.open = open;
    }
  });

  test('under automation, without force, nothing is sent', async () => {
    expect(navigator.webdriver).toBe(true);
    const { a, key } = start({ force: false });
    a.record('settings-opened');
    await a.ready;
    expect(await a.config()).toMatchObject({ enabled: false, reason: 'automation' });
    await a.flush();
    await sleep(200);
    expect((await received(key)).requests).toHaveLength(0);
  });
});
