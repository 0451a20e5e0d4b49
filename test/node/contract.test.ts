// The storage contract's rules (src/core/contract.ts), each as the contract states it; and its
// in-memory implementation (test/model/storage.ts, the model's storage) on the promises that the
// model leans on. The IndexedDB implementation is held to the same in real Chromium
// (test/browser/contract.test.ts).
import { describe, expect, test } from 'vitest';
import { ahead, applyChange, applyJournaled, expired, MARK_MS, OUTBOX_LIMITS, OUTBOX_TTL_MS, over, refuses, type OutboxEntry, type StoredConfig } from '../../src/core/contract';
import { ContractStore } from '../model/storage';

const config: StoredConfig = { analyticsId: 'id', choice: 'unset', metadata: { a: 1 }, firstSessionId: 's' };
const entry = (over: Partial<OutboxEntry> = {}): OutboxEntry => ({ uuid: 'u', projectKey: 'k', apiHost: 'h', kind: 'Append', name: 'n', props: {}, at: 0, queuedAt: 1000, distinctId: 'id', sessionId: 's', cut: 0, bytes: 10, ...over });

describe('the cut rule: applyChange', () => {
  test('a choice is set with its time; nothing else moves', () => {
    expect(applyChange(config, { choice: 'enabled', choiceTime: 't' })).toEqual({ ...config, choice: 'enabled', choiceTime: 't' });
  });
  test('a cut (an opt-out, a clear) counts up from none, dated', () => {
    const once = applyChange(config, { choice: 'disabled', choiceTime: 't', cutAt: 5 });
    expect(once).toMatchObject({ choice: 'disabled', cut: 1, cutAt: 5 });
    expect(applyChange(once, { cutAt: 9 })).toMatchObject({ cut: 2, cutAt: 9 });
  });
  test('a cut stored after another, though asked for before it, counts up but keeps the later date (what the other ended stays ended)', () => {
    const later = applyChange(config, { analyticsId: 'b', cutAt: 9 });
    expect(applyChange(later, { analyticsId: 'a', cutAt: 5 })).toMatchObject({ analyticsId: 'a', cut: 2, cutAt: 9 });
  });
  test('a clear: the new id, metadata wiped, no longer a first run', () => {
    expect(applyChange(config, { analyticsId: 'new', cutAt: 1 })).toEqual({ analyticsId: 'new', choice: 'unset', metadata: {}, cut: 1, cutAt: 1 });
  });
  test('metadata is merged into what is stored, at most 64 keys', () => {
    expect(applyChange(config, { metadata: { b: 2 } }).metadata).toEqual({ a: 1, b: 2 });
    const many = Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`k${i}`, i]));
    expect(Object.keys(applyChange({ ...config, metadata: {} }, { metadata: many }).metadata)).toHaveLength(64);
  });
  test('the input is not changed', () => {
    const before = structuredClone(config);
    applyChange(config, { choice: 'disabled', choiceTime: 't', analyticsId: 'x', metadata: { z: 1 }, cutAt: 3 });
    expect(config).toEqual(before);
  });
});

describe('journaled changes', () => {
  test('applied once per id, however often read; the ids remembered, the last 16', () => {
    const once = applyJournaled(config, 'j1', { choice: 'disabled', choiceTime: 't', cutAt: 1 });
    expect(once).toMatchObject({ choice: 'disabled', cut: 1, applied: ['j1'] });
    expect(applyJournaled(once, 'j1', { choice: 'disabled', choiceTime: 't', cutAt: 1 })).toBe(once);
    let c = config;
    for (let i = 0; i < 20; i++) c = applyJournaled(c, `j${i}`, { cutAt: i });
    expect(c.applied).toEqual(Array.from({ length: 16 }, (_, i) => `j${i + 4}`));
  });
});

describe('the add rule: refuses', () => {
  test('the stored choice off, another id, another cut: refused, each with its reason; else accepted', () => {
    expect(refuses({ ...config, choice: 'disabled' }, entry())).toBe('user-opted-out');
    expect(refuses(config, entry({ distinctId: 'other' }))).toBe('cleared');
    expect(refuses({ ...config, cut: 1 }, entry({ cut: 0 }))).toBe('recorded before the last opt-out or clear');
    expect(refuses(config, entry({ cut: 1 }))).toBe('recorded before the last opt-out or clear');
    expect(refuses(config, entry({ cut: undefined }))).toBeUndefined();
    expect(refuses({ ...config, choice: 'enabled', cut: 2 }, entry({ cut: 2 }))).toBeUndefined();
  });
});

describe('time', () => {
  test('expired: a week old by the wall clock — or stamped more than a week ahead', () => {
    expect(expired(entry({ queuedAt: 0 }), OUTBOX_TTL_MS)).toBe(false);
    expect(expired(entry({ queuedAt: 0 }), OUTBOX_TTL_MS + 1)).toBe(true);
    expect(expired(entry({ queuedAt: OUTBOX_TTL_MS + 1 }), 0)).toBe(true);
    expect(expired(entry({ queuedAt: OUTBOX_TTL_MS }), 0)).toBe(false);
    expect(expired(entry({ queuedAt: Number.NaN }), 0)).toBe(true);
  });
  test('ahead: still to come, and not further than the most it may be', () => {
    expect(ahead(100, 50, 60)).toBe(true);
    expect(ahead(110, 50, 60)).toBe(true);
    expect(ahead(111, 50, 60)).toBe(false);
    expect(ahead(50, 50, 60)).toBe(false);
    expect(ahead('junk', 50, 60)).toBe(false);
  });
  test('over: past the count or the bytes', () => {
    expect(over(OUTBOX_LIMITS)).toBe(false);
    expect(over({ ...OUTBOX_LIMITS, count: OUTBOX_LIMITS.count + 1 })).toBe(true);
    expect(over({ ...OUTBOX_LIMITS, bytes: OUTBOX_LIMITS.bytes + 1 })).toBe(true);
  });
});

describe('the contract in memory (the model\'s storage)', () => {
  const who = { sessionId: 's1', projectKey: 'k', apiHost: 'h' };
  const store = () => {
    let n = 0;
    let wall = 1_000_000;
    const s = new ContractStore(() => `id${n++}`, () => wall);
    return { s, tick: (ms: number) => (wall += ms) };
  };

  test('a first read creates the config; a change with a cut empties the outbox and says what another tab had marked', () => {
    const { s } = store();
    expect(s.run({ op: 'read' }, who)).toMatchObject({ ok: true, created: true, config: { analyticsId: 'id0' } });
    const e = (uuid: string) => entry({ uuid, distinctId: 'id0' });
    s.run({ op: 'add', entries: [e('a'), e('b')] }, who);
    s.run({ op: 'list', limit: 1, mark: true }, { ...who, sessionId: 's2' }); // another tab marks 'a'
    const r = s.run({ op: 'change', change: { choice: 'disabled', choiceTime: 't', cutAt: 1 } }, who);
    expect(r).toMatchObject({ ok: true, othersFlying: true, flying: ['a'] });
    expect(r.dropped!.map((x) => x.uuid)).toEqual(['a', 'b']);
    expect(s.outbox.size).toBe(0);
  });

  test('a change stored under an id is applied once: the copy its page journaled under that id (it closed before it heard the result) is not applied again', () => {
    const { s } = store();
    s.run({ op: 'read' }, who);
    s.run({ op: 'change', change: { analyticsId: 'new', cutAt: 1 }, id: 's-1' }, who);
    s.journalChange('s-1', { analyticsId: 'new', cutAt: 1 });
    expect(s.run({ op: 'read' }, who).config).toMatchObject({ analyticsId: 'new', cut: 1 });
    s.journalChange('s-2', { cutAt: 2 });
    expect(s.run({ op: 'read' }, who).config).toMatchObject({ cut: 2 });
  });

  test('a full disk: a put fails (nothing half done), a cut is journaled and the outbox emptied by deletes; every read applies it', () => {
    const { s } = store();
    s.run({ op: 'read' }, who);
    s.run({ op: 'add', entries: [entry({ uuid: 'a', distinctId: 'id0' })] }, who);
    s.full = true;
    expect(s.run({ op: 'add', entries: [entry({ uuid: 'b', distinctId: 'id0' })] }, who).ok).toBe(false);
    expect([...s.outbox.keys()]).toEqual(['a']);
    const off = s.run({ op: 'change', change: { choice: 'disabled', choiceTime: 't', cutAt: 1 } }, who);
    expect(off).toMatchObject({ ok: true, journaled: true, config: { choice: 'disabled', cut: 1 } });
    expect(s.outbox.size).toBe(0);
    expect(s.run({ op: 'read' }, who).config).toMatchObject({ choice: 'disabled', cut: 1 });
    s.full = false;
    s.run({ op: 'read' }, who);
    expect(s.config).toMatchObject({ choice: 'disabled', cut: 1 });
    expect(s.journalChanges.size).toBe(0);
  });

  test('a list takes the journal and an older build\'s outbox in, by the add rule; marks for MARK_MS; a not-before only another tab stored', () => {
    const { s, tick } = store();
    s.run({ op: 'read' }, who);
    s.journal('gone', [entry({ uuid: 'j', distinctId: 'id0' }), entry({ uuid: 'x', distinctId: 'old' })]);
    s.legacy.set('l', entry({ uuid: 'l', distinctId: 'id0' }));
    s.run({ op: 'remove', uuids: [], unmark: true, notBefore: 1_000_000 + 5000 }, { ...who, sessionId: 's2' });
    const r = s.run({ op: 'list', limit: 10, mark: true }, who);
    expect(r.entries!.map((e) => e.uuid)).toEqual(['j', 'l']);
    expect(r.refused!.map((e) => e.uuid)).toEqual(['x']);
    expect(r.notBefore).toBe(1_000_000 + 5000);
    expect(s.run({ op: 'list', limit: 10, mark: true }, { ...who, sessionId: 's2' }).notBefore).toBeUndefined(); // its own
    expect(s.run({ op: 'read' }, { ...who, sessionId: 's3' }).othersFlying).toBe(true);
    tick(MARK_MS);
    expect(s.run({ op: 'read' }, { ...who, sessionId: 's3' }).othersFlying).toBe(false);
  });
});
