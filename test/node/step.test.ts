// step() as a specification: given a state, when a fact comes, then these effects. One test per
// row of the README's table "What the core does, fact by fact"; read without the model.
import { describe, expect, test } from 'vitest';
import type { Valid } from '../../src/2-validate';
import type { OutboxEntry, StorageOp, StorageResult, StoredConfig } from '../../src/core/contract';
import { initialState, step } from '../../src/core/step';
import { backoff, due, nextWake } from '../../src/core/timers';
import { dropRef, sent, unconfirmed } from '../../src/core/outcomes';
import type { Effect, Input, State } from '../../src/core/types';

const WALL = 1_800_000_000_000;
const SETTINGS = { projectKey: 'phc_spec', apiHost: 'https://spec.test', intervalMs: 2000, firstRunGrace: false, respectPrivacySignals: true, devBuild: false, force: true, embedderPolicyOff: false, sessionId: 'page', writeChunk: 50, batch: 100 };
const CONFIG: StoredConfig = { analyticsId: 'id', choice: 'unset', metadata: {} };
const event: Valid = { kind: 'Append', name: 'settings-opened', props: {}, time: WALL, bytes: 2 };

/** A tab of the core, with its clocks; `fact()` steps it and returns the effects (wake-ups apart). */
function tab(settings: Partial<typeof SETTINGS> = {}) {
  const t = {
    st: initialState({ ...SETTINGS, ...settings }, 0) as State,
    now: 0,
    /** How far the wall clock has been set from the monotonic one. */
    offset: 0,
    signals: { privacySignal: false, automation: false, embedderForbids: false },
    wakes: [] as (number | undefined)[],
    fact(input: Input, ms = 0): Effect[] {
      t.now += ms;
      const { effects } = step(t.st, { ...input, now: t.now, wall: WALL + t.now + t.offset, signals: t.signals, random: 0.5 } as never);
      t.wakes = effects.filter((e) => e.type === 'wake').map((e) => (e as { at?: number }).at);
      return effects.filter((e) => e.type !== 'wake');
    },
    /** The result of the storage op under way. */
    stored(result: Partial<StorageResult> = {}, ms = 0): Effect[] {
      const io = t.st.io!;
      return t.fact({ type: 'stored', id: io.id, op: io.op, result: { ok: true, config: t.st.consent.config.analyticsId ? { ...CONFIG, ...t.st.consent.config } : CONFIG, ...result } }, ms);
    },
    op: () => t.st.io?.op,
  };
  return t;
}
type Tab = ReturnType<typeof tab>;

const kinds = (fx: Effect[]) => fx.map((e) => (e.type === 'storage' ? `storage:${e.op.op}` : e.type === 'audit' ? `audit:${e.entry.outcome}` : e.type));
const audits = (fx: Effect[]) => fx.flatMap((e) => (e.type === 'audit' ? [`${e.entry.outcome}: ${e.entry.reason ?? ''}`] : []));
const of = <T extends Effect['type']>(fx: Effect[], type: T) => fx.filter((e): e is Extract<Effect, { type: T }> => e.type === type);
const entry = (uuid: string, over: Partial<OutboxEntry> = {}): OutboxEntry => ({ uuid, projectKey: 'phc_spec', apiHost: 'https://spec.test', kind: 'Append', name: 'settings-opened', props: {}, at: WALL, queuedAt: WALL, distinctId: 'id', sessionId: 'other', cut: 0, bytes: 300, ...over });

/** Given: started, the stored config read (`config`), leadership answered (`lead`). */
function loaded(config: Partial<StoredConfig> = {}, lead = true, settings = {}): Tab {
  const t = tab(settings);
  t.fact({ type: 'start' });
  t.stored({ config: { ...CONFIG, ...config } });
  if (t.st.lead === 'asking') t.fact({ type: 'lead', leading: lead });
  if (t.op()?.op === 'list') t.stored({ entries: [] }); // what the user refused, swept: none
  return t;
}

/** Given: the delivering tab, posthog-js loaded, what it listed in flight (a request under way). */
function flying(uuids = ['u1', 'u2']): { t: Tab; id: number } {
  const t = loaded();
  t.fact({ type: 'transport', result: 'ready' });
  t.fact({ type: 'tick' }, 2000); // the flush window: a list
  const fx = t.stored({ entries: uuids.map((u) => entry(u)), more: false });
  return { t, id: of(fx, 'send')[0]!.id };
}

describe('the host', () => {
  test('start: the stored choice is read first; until then, off with the reason "loading"', () => {
    const t = tab();
    expect(kinds(t.fact({ type: 'start' }))).toEqual(['storage:read']);
    expect(t.st.consent.told).toEqual({ enabled: false, reason: 'loading' });
  });

  test('record while loading: held (no write), judged once the choice is read', () => {
    const t = tab();
    t.fact({ type: 'start' });
    expect(t.fact({ type: 'record', events: [event], uuids: ['u1'] })).toEqual([]);
    expect(t.st.held).toHaveLength(1);
    const fx = t.stored({ config: CONFIG });
    expect(kinds(fx)).toEqual(['notify', 'lead', 'storage:add']);
    expect(of(fx, 'notify')[0]!.state).toEqual({ enabled: true, reason: 'default' });
  });

  test('record while loading, past 500 held: dropped, "too many at once"', () => {
    const t = tab();
    t.fact({ type: 'start' });
    const uuids = Array.from({ length: 501 }, (_, i) => `u${i}`);
    const fx = t.fact({ type: 'record', events: uuids.map(() => event), uuids });
    expect(audits(fx)).toEqual(['dropped: too many at once: more than 500 recorded before the stored choice was read']);
  });

  test('record while on: written (an add), the flush window armed', () => {
    const t = loaded();
    const fx = t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(kinds(fx)).toEqual(['load-transport', 'storage:add']);
    expect(t.st.timers.pass).toBe(t.now + 2000);
    const add = of(fx, 'storage')[0]!.op as StorageOp & { op: 'add' };
    expect(add.entries[0]).toMatchObject({ uuid: 'u1', distinctId: 'id', sessionId: 'page', cut: 0, eventId: 1 });
  });

  test('the user said no (read from storage): what waits in storage is swept, each entry dropped with the reason', () => {
    const t = tab();
    t.fact({ type: 'start' });
    expect(t.stored({ config: { ...CONFIG, choice: 'disabled' } }).map((e) => (e.type === 'storage' ? e.op : e.type))).toEqual(['notify', { op: 'list', limit: 100, mark: false }]);
    expect(audits(t.stored({ entries: [entry('left')] }))).toEqual(['dropped: user-opted-out']);
  });

  test('record while the user said no: dropped with the reason, nothing stored', () => {
    const t = loaded({ choice: 'disabled' });
    expect(audits(t.fact({ type: 'record', events: [event], uuids: ['u1'] }))).toEqual(['dropped: user-opted-out']);
    expect(t.op()).toBeUndefined();
  });

  test('setEnabled(false): what this tab holds ends now (its request aborted: unconfirmed); the opt-out is stored with a cut', () => {
    const { t, id } = flying(['u1']);
    t.fact({ type: 'record', events: [event], uuids: ['u2'] });
    const fx = t.fact({ type: 'set-choice', enabled: false, ask: 7 });
    expect(of(fx, 'abort')).toEqual([{ type: 'abort', id }]);
    expect(audits(fx)).toEqual([expect.stringMatching(/^unconfirmed: user-opted-out: its request was aborted in flight/), 'dropped: user-opted-out']);
    expect(of(fx, 'notify')[0]!.state).toEqual({ enabled: false, reason: 'user-opted-out' });
    expect(t.st.changes[0]).toMatchObject({ choice: 'disabled', cutAt: WALL + t.now, asks: [7] });
  });

  test('an opt-out stored while another tab still flies: announced as emptying; answered once that tab\'s mark is gone (or after 3 s)', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: false, ask: 7 });
    const fx = t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1 }, othersFlying: true, dropped: [entry('x1'), entry('x2')], flying: ['x1'] });
    expect(of(fx, 'announce')).toEqual([{ type: 'announce', change: 'choice', choice: 'disabled', emptied: true, cut: 1 }]); // the cut it made: what is stamped under it came after
    expect(audits(fx)).toEqual(['unconfirmed: user-opted-out: another tab may have been sending it', 'dropped: user-opted-out']);
    expect(of(fx, 'done')).toEqual([]);
    t.stored({ entries: [] }); // the sweep
    expect(kinds(t.fact({ type: 'tick' }, 50))).toEqual(['storage:read']); // it looks again
    expect(of(t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1 }, othersFlying: false }), 'done')).toEqual([{ type: 'done', ask: 7 }]);
  });

  test('an opt-out whose wait for other tabs runs out: answered at 3 s', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: false, ask: 7 });
    t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1 }, othersFlying: true });
    expect(of(t.fact({ type: 'tick' }, 3000), 'done')).toEqual([{ type: 'done', ask: 7 }]);
  });

  test('setEnabled(true): stored, announced, answered', () => {
    const t = loaded({ choice: 'disabled' });
    expect(kinds(t.fact({ type: 'set-choice', enabled: true, ask: 3 }))).toEqual(['notify', 'lead', 'storage:change']);
    const fx = t.stored({ config: { ...CONFIG, choice: 'enabled' } });
    expect(of(fx, 'announce')).toEqual([{ type: 'announce', change: 'choice', choice: 'enabled' }]);
    expect(of(fx, 'done')).toEqual([{ type: 'done', ask: 3 }]);
  });

  test('an opt-out then at once an opt-in: one change, the opt-in with the opt-out\'s cut (what came before still ends)', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 }); // under way
    t.fact({ type: 'set-choice', enabled: false, ask: 2 });
    t.fact({ type: 'set-choice', enabled: true, ask: 3 });
    expect(t.st.changes).toHaveLength(2);
    expect(t.st.changes[1]).toMatchObject({ choice: 'enabled', cutAt: WALL, asks: [2, 3] });
  });

  test('clear(): what this tab holds ends ("cleared"); a new id and a cut are stored; the host is answered once stored', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    const fx = t.fact({ type: 'clear', analyticsId: 'new', ask: 4 });
    expect(audits(fx)).toEqual(['dropped: cleared']);
    expect(t.st.consent.config.analyticsId).toBe('new');
    t.stored(); // the add under way
    expect(t.op()).toEqual({ op: 'change', change: { analyticsId: 'new', cutAt: WALL }, id: 'page-' + t.st.changes[0]!.id }); // stored under the id it would be journaled under: applied once
    const done = t.stored({ config: { ...CONFIG, analyticsId: 'new', cut: 1 } });
    expect(of(done, 'announce')).toEqual([{ type: 'announce', change: 'clear', choice: 'unset', emptied: true, cut: 1 }]);
    expect(of(done, 'done')).toEqual([{ type: 'done', ask: 4 }]);
  });

  test('setMetadata(): applied now, stored, announced as metadata', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { team: 'vision' }, ask: 5 });
    expect(t.st.consent.config.metadata).toEqual({ team: 'vision' });
    const fx = t.stored({ config: { ...CONFIG, metadata: { team: 'vision' } } });
    expect(of(fx, 'announce')).toEqual([{ type: 'announce', change: 'metadata', choice: 'unset' }]);
  });

  test('flush() in the delivering tab: a pass now; answered once the endpoint answered', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    expect(kinds(t.fact({ type: 'flush', ask: 9 }))).toEqual(['storage:list']);
    const sent = t.stored({ entries: [entry('u1')] });
    const id = of(sent, 'send')[0]!.id;
    expect(of(sent, 'done')).toEqual([]);
    expect(of(t.fact({ type: 'answer', id, status: 200, redirected: false, quotaLimited: false }), 'done')).toEqual([{ type: 'done', ask: 9 }]);
  });

  test('flush() in a tab that does not deliver: once its writes are done, it asks the delivering tab to send now', () => {
    const t = loaded({}, false);
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(t.fact({ type: 'flush', ask: 9 })).toEqual([]);
    const fx = t.stored();
    expect(of(fx, 'wrote')).toEqual([{ type: 'wrote', flush: true }]);
    expect(of(fx, 'done')).toEqual([{ type: 'done', ask: 9 }]);
  });

  test('shutdown(): waits (3 s at most) for the request under way; then it is aborted (what it carried stays stored), the lock let go, closed', () => {
    const { t, id } = flying();
    expect(t.fact({ type: 'shutdown', ask: 1 })).toEqual([]);
    const fx = t.fact({ type: 'tick' }, 3000);
    expect(kinds(fx)).toEqual(['abort', 'lead', 'closed', 'done']);
    expect(of(fx, 'abort')).toEqual([{ type: 'abort', id }]);
    expect(audits(fx)).toEqual([]);
    expect(t.st.page).toBe('closed');
  });
});

describe('other tabs', () => {
  test('an opt-out heard: off at once, what this tab holds ends, storage read again', () => {
    const { t, id } = flying(['u1']);
    const fx = t.fact({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true });
    expect(of(fx, 'abort')).toEqual([{ type: 'abort', id }]);
    expect(of(fx, 'notify')[0]!.state).toEqual({ enabled: false, reason: 'user-opted-out' });
    expect(audits(fx)[0]).toMatch(/^unconfirmed: user-opted-out/);
    expect(kinds(fx)).toContain('storage:read');
  });

  test('an opt-out heard is not undone by a read that shows "enabled" (until a newer opt-in is heard or stored)', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'choice', choice: 'disabled' });
    t.stored({ config: { ...CONFIG, choice: 'enabled' } });
    expect(t.st.consent.told.reason).toBe('user-opted-out');
    t.fact({ type: 'heard', change: 'choice', choice: 'enabled' });
    t.stored({ config: { ...CONFIG, choice: 'enabled' } });
    expect(t.st.consent.told.reason).toBe('user-opted-in');
  });

  test('a clear heard: what this tab holds ends, nothing is sent ("loading") until storage is read again', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    const fx = t.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true });
    expect(audits(fx)).toEqual(['dropped: cleared']);
    expect(t.st.consent.told.reason).toBe('loading');
  });

  test('metadata heard: read again, and sending goes on meanwhile', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'unset' });
    expect(t.st.consent.known).toMatchObject({ k: 'reread', hold: false });
    expect(t.st.consent.told).toEqual({ enabled: true, reason: 'default' });
  });

  test('"wrote" heard by the delivering tab: it looks in its next flush window; "flush" heard: now', () => {
    const t = loaded();
    t.fact({ type: 'wrote', flush: false });
    expect(t.st.timers.pass).toBe(2000);
    expect(kinds(t.fact({ type: 'wrote', flush: true }))).toEqual(['storage:list']);
  });
});

describe('delivery', () => {
  test('a list, posthog-js loaded: one request of the oldest (at most `batch`), each allow-listed, not started after 1 s', () => {
    const t = loaded({}, true, { batch: 2 });
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    const fx = t.stored({ entries: [entry('u1'), entry('u2'), entry('u3')], more: true });
    const send = of(fx, 'send')[0]!;
    expect(send.batch.map((w) => w.uuid)).toEqual(['u1', 'u2']);
    expect(send.batch[0]!.properties).toEqual({ distinct_id: 'id', session_id: 'other', $geoip_disable: true });
    expect(send.by).toBe(t.now + 1000);
  });

  test('a list judges before it sends: expired, another id, before the cut, each dropped with its reason', () => {
    const t = loaded({ cut: 2 });
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    const fx = t.stored({ config: { ...CONFIG, cut: 2 }, entries: [entry('old', { queuedAt: WALL - 8 * 86_400_000, cut: 2 }), entry('other', { distinctId: 'x', cut: 2 }), entry('before', { cut: 1 }), entry('ok', { cut: 2 })] });
    expect(audits(fx)).toEqual(['dropped: expired: not delivered within 7 days', 'dropped: cleared', 'dropped: recorded before the last opt-out or clear']);
    expect(of(fx, 'send')[0]!.batch.map((w) => w.uuid)).toEqual(['ok']);
  });

  test('a list that finds another tab\'s wait (not-before): nothing sent until then', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    const fx = t.stored({ entries: [entry('u1')], notBefore: WALL + t.now + 20_000 });
    expect(of(fx, 'send')).toEqual([]);
    expect(t.st.timers.retry).toBe(t.now + 20_000);
  });

  test('2xx: sent (the audit has exactly the properties sent), then removed with the mark', () => {
    const { t, id } = flying(['u1']);
    const fx = t.fact({ type: 'answer', id, status: 200, redirected: false, quotaLimited: false });
    expect(of(fx, 'audit')[0]!.entry).toMatchObject({ outcome: 'sent', uuid: 'u1', attempts: 1, properties: { distinct_id: 'id', session_id: 'other', $geoip_disable: true } });
    expect(t.op()).toEqual({ op: 'remove', uuids: ['u1'], unmark: true });
  });

  test('4xx: refused by the endpoint, dropped and removed', () => {
    const { t, id } = flying(['u1']);
    expect(audits(t.fact({ type: 'answer', id, status: 400, redirected: false, quotaLimited: false }))).toEqual(['dropped: refused by the endpoint (HTTP 400)']);
  });

  test('5xx or no answer: retried after a backoff of 3 s (±50 %), told to the next tab as a not-before', () => {
    const { t, id } = flying(['u1']);
    t.fact({ type: 'answer', id, status: 503, redirected: false, quotaLimited: false });
    expect(t.st.timers.retry).toBe(t.now + 3000);
    expect(t.op()).toEqual({ op: 'remove', uuids: [], unmark: true, notBefore: WALL + t.now + 3000 });
    expect(t.st.lastError).toBe('HTTP 503');
  });

  test('429: at least 30 s', () => {
    const { t, id } = flying(['u1']);
    t.fact({ type: 'answer', id, status: 429, redirected: false, quotaLimited: false });
    expect(t.st.timers.retry).toBe(t.now + 30_000);
  });

  test('a redirect is not delivery: retried, and said so', () => {
    const { t, id } = flying(['u1']);
    expect(audits(t.fact({ type: 'answer', id, status: 200, redirected: true, quotaLimited: false }))).toEqual([]);
    expect(t.st.lastError).toBe('redirected (HTTP 200): not delivery');
  });

  test('quota_limited: sent (with the note), and what comes within a minute is dropped as quota-limited', () => {
    const { t, id } = flying(['u1']);
    expect(audits(t.fact({ type: 'answer', id, status: 200, redirected: false, quotaLimited: true }))).toEqual(['sent: recorded in an earlier page load or another tab; the endpoint answered quota_limited: PostHog discards it']);
    expect(t.st.timers.quota).toBe(t.now + 60_000);
  });

  test('a write fails: the tab sends what only it holds itself, once storage has its mark', () => {
    const t = loaded({}, false);
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(kinds(t.stored({ ok: false, error: 'QuotaExceededError' }))).toEqual(['load-transport']);
    expect(t.st.outbox.stranded).toMatch(/IndexedDB write failed/);
    t.fact({ type: 'transport', result: 'ready' });
    expect(t.fact({ type: 'tick' }, 2000).map((e) => (e.type === 'storage' ? e.op : e.type))).toEqual([{ op: 'mark', uuids: ['u1'] }]); // in its flush window: marked first (an opt-out elsewhere waits for it)
    expect(of(t.stored(), 'send')[0]!.batch.map((w) => w.uuid)).toEqual(['u1']);
  });
});

describe('leadership and posthog-js', () => {
  test('lead: asked while the gate is on; leading, the next flush window looks at what earlier pages left', () => {
    const t = tab();
    t.fact({ type: 'start' });
    expect(kinds(t.stored())).toEqual(['notify', 'lead']);
    t.fact({ type: 'lead', leading: true });
    expect(t.st.timers.pass).toBe(2000);
  });

  test('transport failed: the lead let go (another tab may load it), asked again and reloaded after a backoff; unusable: one audit entry; hung: the lead is let go', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(of(t.fact({ type: 'transport', result: 'failed' }), 'lead')).toEqual([{ type: 'lead', lead: false }]);
    expect(t.st.timers.reload).toBe(t.now + 3000);
    expect(of(t.fact({ type: 'tick' }, 3000), 'lead')).toEqual([{ type: 'lead', lead: true }]);
    expect(kinds(t.fact({ type: 'lead', leading: true }))).toContain('load-transport');
    expect(audits(t.fact({ type: 'transport', result: 'unusable', problem: 'x' }))).toEqual([expect.stringMatching(/^dropped: posthog-js is not usable/)]);
    const hung = loaded();
    hung.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(of(hung.fact({ type: 'transport', result: 'hung' }), 'lead')).toEqual([{ type: 'lead', lead: false }]);
  });
});

describe('the page', () => {
  test('hidden: delivers now, while the page still runs', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    expect(kinds(t.fact({ type: 'page', page: 'hidden' }))).toEqual(['storage:list']);
  });

  test('closing: what only this tab holds is journaled now; nothing is sent (a closing page may not have heard what others stored); the lock is let go', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    const fx = t.fact({ type: 'page', page: 'closing' });
    expect(kinds(fx)).toEqual(['journal', 'lead']);
    expect(of(fx, 'journal')[0]!.entries.map((e) => e.uuid)).toEqual(['u1']);
  });

  test('closing with an opt-out not yet stored: the cut is journaled (it must not be lost) and announced (journaled, it is as good as stored)', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 }); // under way
    t.fact({ type: 'set-choice', enabled: false, ask: 2 });
    const fx = t.fact({ type: 'page', page: 'closing' });
    expect(of(fx, 'journal')[0]!.changes.map((c) => c.change)).toEqual([{ cutAt: WALL, choice: 'disabled', choiceTime: new Date(WALL).toISOString() }]);
    expect(of(fx, 'announce')).toEqual([{ type: 'announce', change: 'choice', choice: 'disabled', emptied: true }]); // no cut: it may not have read the latest one
  });

  test('closing before its first read with a clear() not stored: journaled and announced, so that other tabs end what they hold by the order they hear it, not by the clock', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.fact({ type: 'clear', analyticsId: 'id2', ask: 1 });
    const fx = t.fact({ type: 'page', page: 'closing' });
    expect(of(fx, 'journal')[0]!.changes.map((c) => c.change)).toEqual([{ cutAt: WALL, analyticsId: 'id2' }]);
    expect(of(fx, 'announce')).toEqual([{ type: 'announce', change: 'clear', choice: 'unset', emptied: true, analyticsId: 'id2' }]); // its new id: what is stamped under it came after it
    expect(of(t.fact({ type: 'record', events: [event], uuids: ['u1'] }), 'announce')).toEqual([]); // once
  });

  test('recorded while closing (the host\'s own pagehide handler): journaled again, with the rest', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    t.fact({ type: 'page', page: 'closing' });
    const fx = t.fact({ type: 'record', events: [event], uuids: ['u2'] });
    expect(of(fx, 'journal')[0]!.entries.map((e) => e.uuid).sort()).toEqual(['u1', 'u2']);
  });

  test('held while reading storage again (back from the cache), then closing: journaled, stamped with what it last read', () => {
    const t = loaded();
    t.fact({ type: 'page', page: 'restored' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(t.st.held).toHaveLength(1);
    const journal = of(t.fact({ type: 'page', page: 'closing' }), 'journal')[0]!;
    expect(journal.entries).toEqual([expect.objectContaining({ uuid: 'u1', distinctId: 'id', cut: 0 })]);
  });

  test('held while reading again, dated before the cut it last read (the clock set back meanwhile), then closing: dropped with the reason, not journaled under that cut', () => {
    const t = loaded({ cut: 1, cutAt: WALL + 5 });
    t.fact({ type: 'page', page: 'restored' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(t.st.held).toHaveLength(1);
    const fx = t.fact({ type: 'page', page: 'closing' });
    expect(audits(fx)).toEqual(['dropped: recorded before the last opt-out or clear']);
    expect(of(fx, 'journal')[0]!.entries).toEqual([]);
  });

  test('storage lost (the site data cleared) before the first read: what the tab held ends, with the reason (what ended it may have gone with the data)', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(audits(t.fact({ type: 'storage-lost' }))).toEqual(['dropped: storage was cleared before it was read']);
    expect(t.st.held).toEqual([]);
  });

  test('storage upgraded by a newer build before the first read: what the tab held is kept (the data and the cut are kept too), judged once read', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(audits(t.fact({ type: 'storage-lost', upgraded: true }))).toEqual([]);
    t.stored(); // the read under way: not trusted
    expect(t.st.held).toHaveLength(1);
    expect(kinds(t.stored())).toEqual(['notify', 'lead', 'storage:add']);
  });

  test('restored from the back/forward cache: the journal of its events forgotten (it holds them again), its cuts kept journaled (applied once), storage read again before anything is sent', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    t.fact({ type: 'set-choice', enabled: false, ask: 1 });
    t.fact({ type: 'page', page: 'closing' });
    const fx = t.fact({ type: 'page', page: 'restored' });
    expect(of(fx, 'journal')).toEqual([{ type: 'journal', entries: [], changes: [{ id: expect.stringMatching(/^page-/), change: expect.objectContaining({ choice: 'disabled', cutAt: WALL }) }] }]);
    expect(t.st.consent.told.reason).toBe('user-opted-out');
    const r = loaded();
    r.fact({ type: 'page', page: 'closing' });
    expect(of(r.fact({ type: 'page', page: 'restored' }), 'journal')).toEqual([{ type: 'journal', entries: [], changes: [] }]);
    expect(r.st.consent.told.reason).toBe('loading');
  });

  test('online: a failed request is retried now', () => {
    const { t, id } = flying(['u1']);
    t.fact({ type: 'answer', id, status: 0, redirected: false, quotaLimited: false });
    t.stored(); // its removal
    expect(kinds(t.fact({ type: 'online' }))).toEqual(['storage:list']);
  });
});

describe('storage', () => {
  test('a read fails: off ("storage-unavailable"), tried again after a backoff', () => {
    const t = tab();
    t.fact({ type: 'start' });
    const fx = t.stored({ ok: false, error: 'x' });
    expect(of(fx, 'notify')[0]!.state).toEqual({ enabled: false, reason: 'storage-unavailable' });
    expect(t.st.timers.storage).toBe(3000);
    expect(kinds(t.fact({ type: 'tick' }, 3000))).toEqual(['storage:read']);
  });

  test('connection lost: read again, nothing sent until then', () => {
    const t = loaded();
    t.fact({ type: 'storage-lost' });
    expect(t.st.consent.told.reason).toBe('loading');
  });

  test('the config vanished after it was read (site data cleared): everything held ends, and a cut is stored', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    const fx = t.stored({ created: true, config: { ...CONFIG, analyticsId: 'fresh' } });
    expect(audits(fx)).toEqual(['dropped: cleared: the site data was cleared']);
    expect(t.op()).toEqual({ op: 'change', change: { cutAt: WALL }, id: expect.any(String) });
  });

  test('a config created by the first read the tab trusts is not "the site data was cleared", even after an upgrade and a clear() before it', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.fact({ type: 'clear', analyticsId: 'mine', ask: 1 });
    t.fact({ type: 'storage-lost' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    const fx = t.stored({ created: true }); // issued before the upgrade: not trusted, read again after its own clear
    expect(audits(fx)).toEqual([]);
    expect(t.op()).toEqual({ op: 'change', change: { analyticsId: 'mine', cutAt: WALL }, id: expect.any(String) }); // its own clear, and no cut of "erased"
  });

  test('what a read, list or add could not keep (evicted, refused by the add rule) is audited here', () => {
    const t = loaded();
    const fx = t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(kinds(fx)).toContain('storage:add');
    expect(audits(t.stored({ dropped: [entry('old')], refused: [entry('u1', { cut: 3 })] }))).toEqual(['dropped: outbox full: the oldest waiting events are dropped', 'dropped: recorded before the last opt-out or clear']);
  });
});

describe('consent, rule by rule', () => {
  test('the gate: the embedder forbids it (by the setting, or the page\'s tag): off, "embedder-policy"', () => {
    expect(loaded({ choice: 'enabled' }, true, { embedderPolicyOff: true }).st.consent.told.reason).toBe('embedder-policy');
    const t = tab();
    t.signals.embedderForbids = true;
    t.fact({ type: 'start' });
    t.stored({ config: { ...CONFIG, choice: 'enabled' } });
    expect(t.st.consent.told.reason).toBe('embedder-policy');
  });

  test('the gate: a privacy signal is honoured when asked to (off, what waits swept), ignored when not', () => {
    const t = tab();
    t.signals.privacySignal = true;
    t.fact({ type: 'start' });
    t.stored();
    expect(t.st.consent.told).toEqual({ enabled: false, reason: 'privacy-signal' });
    expect(t.op()).toEqual({ op: 'list', limit: 100, mark: false }); // the sweep: what waits ends
    const ignored = tab({ respectPrivacySignals: false });
    ignored.signals.privacySignal = true;
    ignored.fact({ type: 'start' });
    ignored.stored();
    expect(ignored.st.consent.told).toEqual({ enabled: true, reason: 'default' });
  });

  test('each change gets an id of its own, merges too (a journaled change is applied once per id)', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: false, ask: 1 }); // under way
    t.fact({ type: 'clear', analyticsId: 'new', ask: 2 });
    const journal = of(t.fact({ type: 'page', page: 'closing' }), 'journal')[0]!;
    const ids = journal.changes.map((c) => c.id);
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(2);
  });

  test('two clears merged into one change cut once in memory, as they will in storage: what is recorded after them is stamped with that cut', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 }); // under way
    t.fact({ type: 'clear', analyticsId: 'a', ask: 2 });
    t.fact({ type: 'clear', analyticsId: 'b', ask: 3 });
    expect(t.st.changes).toHaveLength(2);
    expect(t.st.consent.config).toMatchObject({ analyticsId: 'b', cut: 1 });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(t.st.outbox.known.get('u1')).toMatchObject({ distinctId: 'b', cut: 1 });
  });

  test('metadata calls while another change is written are merged into one change, every key kept; a clear after them wipes them', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: true, ask: 1 }); // under way
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 2 });
    t.fact({ type: 'set-metadata', metadata: { b: 2 }, ask: 3 });
    expect(t.st.changes).toHaveLength(2);
    expect(t.st.changes[1]).toMatchObject({ metadata: { a: 1, b: 2 }, asks: [2, 3] });
    t.fact({ type: 'clear', analyticsId: 'new', ask: 4 });
    expect(t.st.changes[1]!.metadata).toBeUndefined();
    expect(t.st.changes[1]).toMatchObject({ analyticsId: 'new', asks: [2, 3, 4] });
  });

  test('an opt-in made while storage is read again, which then shows an opt-out stored after the opt-in\'s base: unsure which came last, so the opt-in is stored as an opt-out', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'unset' }); // read again
    t.fact({ type: 'set-choice', enabled: true, ask: 1 });
    expect(t.st.changes[0]).toMatchObject({ choice: 'enabled', base: 0 });
    t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1, cutAt: WALL } });
    expect(t.st.consent.config.choice).toBe('disabled');
    expect(t.st.changes.map((c) => c.choice)).toEqual(['disabled']);
    expect(t.st.changes[0]!.asks).toEqual([1]);
  });

  test('an opt-in made under the cut that storage still shows is not superseded by it', () => {
    const t = loaded({ choice: 'disabled', cut: 1, cutAt: WALL - 10 });
    t.fact({ type: 'heard', change: 'metadata', choice: 'disabled' });
    t.fact({ type: 'set-choice', enabled: true, ask: 1 });
    t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1, cutAt: WALL - 10 } });
    expect(t.st.changes.map((c) => c.choice)).toEqual(['enabled']);
  });

  test('heard: a clear (not an opt-out) still ends what this tab holds, "cleared"; so does any change that emptied the outbox', () => {
    const a = loaded();
    a.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(audits(a.fact({ type: 'heard', change: 'clear', choice: 'enabled' }))).toEqual(['dropped: cleared']);
    const b = loaded();
    b.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(audits(b.fact({ type: 'heard', change: 'choice', choice: 'enabled', emptied: true }))).toEqual(['dropped: user-opted-out']);
    const c = loaded();
    c.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(audits(c.fact({ type: 'heard', change: 'metadata', choice: 'enabled' }))).toEqual([]);
  });

  test('heard with the cut it made: what was stamped before that cut ends; what was stamped under it (recorded after it, or taken in from a closing tab\'s journal) does not; what was recorded before this tab read storage always ends', () => {
    const before = loaded({ cut: 1 });
    before.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(audits(before.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true, cut: 2 }))).toEqual(['dropped: cleared']);
    const under = loaded({ cut: 2 });
    under.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(audits(under.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true, cut: 2 }))).toEqual([]);
    expect([...under.st.outbox.known.keys()]).toEqual(['u1']);
    expect(under.st.consent.known).toMatchObject({ k: 'reread', hold: true }); // storage judges it, before anything is sent
    const early = tab();
    early.fact({ type: 'start' });
    early.fact({ type: 'record', events: [event], uuids: ['u1'] });
    early.stored({ config: { ...CONFIG, cut: 2, cutAt: WALL - 10 } });
    expect(early.st.outbox.known.get('u1')).toMatchObject({ cut: 2, early: true });
    expect(audits(early.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true, cut: 2 }))).toEqual(['dropped: cleared']);
  });

  test('heard: a clear journaled by a closing page (its new id, no cut): what was stamped under that id is kept, the rest ends', () => {
    const u = loaded({ analyticsId: 'new', cut: 1 });
    u.fact({ type: 'record', events: [event], uuids: ['after'] });
    expect(audits(u.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true, analyticsId: 'other' }))).toEqual(['dropped: cleared']);
    const v = loaded({ analyticsId: 'new', cut: 1 });
    v.fact({ type: 'record', events: [event], uuids: ['after'] });
    expect(audits(v.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true, analyticsId: 'new' }))).toEqual([]);
  });

  test('a read that shows another id (a clear elsewhere): what was stamped under that id came after it and goes on; the rest ends', () => {
    const t = loaded({ analyticsId: 'old' });
    t.st.outbox.known.set('o1', entry('o1', { distinctId: 'old' }));
    t.st.outbox.known.set('n1', entry('n1', { distinctId: 'new', cut: 1 })); // taken in from the clearing tab's journal
    t.fact({ type: 'heard', change: 'metadata', choice: 'unset' });
    expect(audits(t.stored({ config: { ...CONFIG, analyticsId: 'new', cut: 1 } }))).toEqual(['dropped: cleared']);
    expect([...t.st.outbox.known.keys()]).toEqual(['n1']);
  });

  test('a read that shows a cut after what a request under way carries (another tab\'s, not heard yet): the request is stopped, what it carried ends', () => {
    const { t, id } = flying(['u1']);
    t.fact({ type: 'heard', change: 'metadata', choice: 'unset' }); // read again
    const fx = t.stored({ config: { ...CONFIG, cut: 1 } });
    expect(of(fx, 'abort')).toEqual([{ type: 'abort', id }]);
    expect(audits(fx)).toEqual(['unconfirmed: recorded before the last opt-out or clear: its request was aborted in flight; it may have reached the endpoint']);
  });

  test('a clear whose write fails is announced all the same (journaled, or tried again: it can only turn tabs off)', () => {
    const t = loaded();
    t.fact({ type: 'clear', analyticsId: 'new', ask: 1 });
    const fx = t.stored({ ok: false, error: 'x' } as never);
    expect(of(fx, 'announce')).toEqual([{ type: 'announce', change: 'clear', choice: 'unset', emptied: true, analyticsId: 'new' }]);
    expect(of(fx, 'done')).toEqual([{ type: 'done', ask: 1 }]);
  });

  test('heard: an opt-out while an opt-in of ours waits to be stored: the opt-in is stored as an opt-out (which came last is unsure)', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 }); // under way
    t.fact({ type: 'set-choice', enabled: true, ask: 2 });
    t.fact({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true });
    expect(t.st.changes.at(-1)).toMatchObject({ choice: 'disabled' });
    expect(t.st.changes.at(-1)!.asks).toEqual([2]);
  });

  test('heard: an opt-in after an opt-out heard lets a read that says "enabled" turn the tab on again', () => {
    const t = loaded({ choice: 'enabled' });
    t.fact({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true });
    t.stored({ config: { ...CONFIG, choice: 'enabled' } });
    expect(t.st.consent.told.enabled).toBe(false);
    t.fact({ type: 'heard', change: 'choice', choice: 'enabled' });
    t.stored({ config: { ...CONFIG, choice: 'enabled' } });
    expect(t.st.consent.told).toEqual({ enabled: true, reason: 'user-opted-in' });
  });

  test('a read that shows another id (a clear elsewhere, its message not heard yet): what this tab holds ends, "cleared" — unless its own clear waits to be stored', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    t.fact({ type: 'page', page: 'hidden' }); // a list
    const fx = t.stored({ config: { ...CONFIG, analyticsId: 'other' }, entries: [] });
    expect(audits(fx)).toContain('dropped: cleared');
    const own = loaded();
    own.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 }); // under way
    own.fact({ type: 'clear', analyticsId: 'mine', ask: 2 });
    own.fact({ type: 'record', events: [event], uuids: ['u2'] });
    expect(audits(own.stored({ config: { ...CONFIG, metadata: { a: 1 } } }))).toEqual([]);
    expect(own.st.consent.config.analyticsId).toBe('mine');
  });

  test('the delivering tab that held while reading again looks in its next window once it has read (messages may have been lost meanwhile)', () => {
    const t = loaded();
    t.fact({ type: 'tick' }, 2000); // the flush window: a list, nothing waits
    t.stored({ entries: [] });
    t.fact({ type: 'page', page: 'restored' });
    expect(t.st.timers.pass).toBeUndefined();
    t.stored();
    expect(t.st.timers.pass).toBe(t.now + SETTINGS.intervalMs);
  });

  test('a stream of messages does not keep a re-read from ending: the read issued after the first counts', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'unset' });
    const reading = t.st.io!.id;
    t.fact({ type: 'heard', change: 'metadata', choice: 'unset' });
    t.fact({ type: 'stored', id: reading, op: t.st.io!.op, result: { ok: true, config: CONFIG } });
    expect(t.st.consent.known.k).toBe('read');
    const held = loaded();
    held.fact({ type: 'heard', change: 'metadata', choice: 'unset' });
    const first = held.st.io!.id;
    held.fact({ type: 'page', page: 'restored' }); // holding: starts again from now
    held.fact({ type: 'stored', id: first, op: held.st.io!.op, result: { ok: true, config: CONFIG } });
    expect(held.st.consent.known).toMatchObject({ k: 'reread', hold: true });
  });

  test('our own choice stored ends an opt-out heard before it (ours came after it)', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true });
    t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1 } });
    if (t.op()?.op === 'list') t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1 }, entries: [] }); // the sweep
    t.fact({ type: 'set-choice', enabled: true, ask: 1 });
    expect(t.op()?.op).toBe('change');
    t.stored({ config: { ...CONFIG, choice: 'enabled', cut: 1 } });
    expect(t.st.consent.heardOff).toBe(false);
    expect(t.st.consent.told).toEqual({ enabled: true, reason: 'user-opted-in' });
  });

  test('an opt-out\'s write that fails is still announced (it can only turn tabs off), and its caller answered; it is tried again', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: false, ask: 1 });
    const fx = t.stored({ ok: false, error: 'x' } as never);
    expect(of(fx, 'announce')).toEqual([{ type: 'announce', change: 'choice', choice: 'disabled', emptied: true }]);
    expect(of(fx, 'done')).toEqual([{ type: 'done', ask: 1 }]);
    const optIn = loaded();
    optIn.fact({ type: 'set-choice', enabled: true, ask: 1 });
    expect(of(optIn.stored({ ok: false, error: 'x' } as never), 'announce')).toEqual([]);
  });

  test('storage failing again and again: each try waits longer', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.stored({ ok: false, error: 'x' } as never);
    const first = t.st.timers.storage! - t.now;
    t.fact({ type: 'tick' }, first);
    t.stored({ ok: false, error: 'x' } as never);
    expect(t.st.timers.storage! - t.now).toBeGreaterThan(first);
  });

  test('the site data cleared under a tab that had opted out: the opt-out is stored again, with a cut', () => {
    const t = loaded({ choice: 'disabled', cut: 1, cutAt: WALL - 10 });
    t.fact({ type: 'heard', change: 'metadata', choice: 'disabled' });
    t.stored({ config: CONFIG, created: true });
    expect(t.st.changes[0]).toMatchObject({ choice: 'disabled', cutAt: WALL });
    expect(t.st.consent.told.reason).toBe('user-opted-out');
  });
});

describe('consent, what a change stored says', () => {
  test('a clear stored: what it emptied is dropped "cleared" (an opt-out\'s: "user-opted-out"); nothing of before is left to remove', () => {
    const t = loaded();
    t.fact({ type: 'page', page: 'hidden' });
    t.stored({ entries: [] });
    t.st.outbox.ended.set('gone', false); // ended here, its removal still to come
    t.fact({ type: 'clear', analyticsId: 'new', ask: 1 });
    const fx = t.stored({ config: { ...CONFIG, analyticsId: 'new', cut: 1 }, dropped: [entry('x1')] });
    expect(audits(fx)).toEqual(['dropped: cleared']);
    expect(t.st.outbox.ended.get('gone')).toBe(true);
    expect(t.op()?.op).not.toBe('remove');
  });

  test('metadata stored while another tab flies: answered at once (only an opt-out or clear waits)', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 });
    expect(of(t.stored({ othersFlying: true }), 'done')).toEqual([{ type: 'done', ask: 1 }]);
  });

  test('an opt-out waiting for another tab: a read that finds none flying answers it at once, no further look', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: false, ask: 7 });
    t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1 }, othersFlying: true });
    t.stored({ entries: [] }); // the sweep
    t.fact({ type: 'tick' }, 50);
    t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1 }, othersFlying: false });
    expect(t.st.timers.settle).toBeUndefined();
    expect(t.st.timers.settleBy).toBeUndefined();
  });

  test('the host is told only when the gate\'s answer changes', () => {
    const t = loaded();
    expect(of(t.fact({ type: 'tick' }, 10), 'notify')).toEqual([]);
    expect(of(t.fact({ type: 'set-choice', enabled: true, ask: 1 }), 'notify')).toEqual([{ type: 'notify', state: { enabled: true, reason: 'user-opted-in' } }]);
  });

  test('off for this page (automation without force): held events dropped with that reason; a request under way stopped, what it carried waits (not ended)', () => {
    const t = tab({ force: false });
    t.signals.automation = true;
    t.fact({ type: 'start' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(audits(t.stored())).toEqual(['dropped: automation']);
    const { t: f, id } = flying(['u1']);
    f.st.s.force = false;
    f.signals.automation = true;
    const fx = f.fact({ type: 'tick' });
    expect(of(fx, 'abort')).toEqual([{ type: 'abort', id }]);
    expect(audits(fx)).toEqual([]);
  });
});

describe('timers', () => {
  const at = (timers: State['timers'], now: number) => ({ st: { timers }, now }) as never;

  test('backoff: 3 s, doubling, at most 5 minutes; ±50 % jitter', () => {
    expect([1, 2, 3, 20].map((n) => backoff(n, 0.5))).toEqual([3000, 6000, 12_000, 300_000]);
    expect([backoff(1, 0), backoff(1, 1)]).toEqual([1500, 4500]);
  });

  test('due: only the timers whose deadline has come, disarmed, earliest first; the next wake-up is the earliest left', () => {
    const c = at({ retry: 30, pass: 10, quota: 50 }, 30);
    expect(due(c)).toEqual(['pass', 'retry']);
    expect((c as { st: State }).st.timers).toEqual({ quota: 50 });
    expect(nextWake(at({ retry: 30, pass: 10, quota: 50 }, 0))).toBe(10);
    expect(nextWake(at({}, 0))).toBeUndefined();
  });
});

describe('delivery, rule by rule', () => {
  const answer = (t: Tab, id: number, status: number, redirected = false) => t.fact({ type: 'answer', id, status, redirected, quotaLimited: false });

  test('answers by status: 2xx sent; a redirect (3xx, or a 2xx reached by one) retried and said so; 4xx refused, but 408 and 429 retried; 5xx and none retried', () => {
    const outcome = (status: number, redirected = false) => {
      const { t, id } = flying(['u1']);
      const fx = answer(t, id, status, redirected);
      return audits(fx)[0] ?? `retry in ${t.st.timers.retry! - t.now} ms: ${t.st.lastError}`;
    };
    expect([200, 204, 299].map((s) => outcome(s))).toEqual(['sent: recorded in an earlier page load or another tab', 'sent: recorded in an earlier page load or another tab', 'sent: recorded in an earlier page load or another tab']);
    expect(outcome(200, true)).toBe('retry in 3000 ms: redirected (HTTP 200): not delivery');
    expect(outcome(0, true)).toBe('retry in 3000 ms: redirected (HTTP 3xx): not delivery');
    expect([300, 399].map((s) => outcome(s))).toEqual(['retry in 3000 ms: redirected (HTTP 300): not delivery', 'retry in 3000 ms: redirected (HTTP 399): not delivery']);
    expect([400, 499].map((s) => outcome(s))).toEqual(['dropped: refused by the endpoint (HTTP 400)', 'dropped: refused by the endpoint (HTTP 499)']);
    expect(outcome(408)).toBe('retry in 3000 ms: HTTP 408');
    expect(outcome(429)).toBe('retry in 30000 ms: HTTP 429');
    expect(outcome(500)).toBe('retry in 3000 ms: HTTP 500');
    expect(outcome(0)).toBe('retry in 3000 ms: no answer');
  });

  test('failing again: each retry waits longer; a success resets it', () => {
    const { t, id } = flying(['u1']);
    answer(t, id, 503);
    const first = t.st.timers.retry! - t.now;
    t.fact({ type: 'tick' }, first);
    t.stored(); // the removal with its not-before
    const again = t.stored({ entries: [entry('u1')] });
    answer(t, of(again, 'send')[0]!.id, 503);
    expect(t.st.timers.retry! - t.now).toBe(2 * first);
    expect(t.st.failures).toBe(2);
  });

  test('the answer to a request stopped after the tab let go of the lead: what it carried is forgotten here (storage holds it: the delivering tab\'s)', () => {
    const { t, id } = flying(['u1']);
    t.signals.embedderForbids = true;
    t.fact({ type: 'tick' }); // off for this page: the request stopped, the lead let go
    expect(t.st.lead).toBe('idle');
    expect(t.st.outbox.known.has('u1')).toBe(true);
    t.fact({ type: 'answer', id, status: 0, redirected: false, quotaLimited: false });
    expect(t.st.outbox.known.has('u1')).toBe(false);
  });

  test('an answer to another request, or to one aborted: nothing', () => {
    const { t, id } = flying(['u1']);
    expect(answer(t, id + 1, 200)).toEqual([]);
    expect(t.st.flight?.id).toBe(id);
    t.fact({ type: 'set-choice', enabled: false, ask: 1 }); // aborts it: unconfirmed
    expect(audits(answer(t, id, 200))).toEqual([]);
  });

  test('sent: the note "recorded in an earlier page load or another tab" only for what another page recorded', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'record', events: [event], uuids: ['mine'] });
    t.stored(); // written
    t.fact({ type: 'tick' }, 2000);
    const fx = t.stored({ entries: [t.st.outbox.known.get('mine')!, entry('theirs')] });
    const done = answer(t, of(fx, 'send')[0]!.id, 200);
    expect(audits(done)).toEqual(['sent: ', 'sent: recorded in an earlier page load or another tab']);
  });

  test('requests are numbered apart from storage ops: each a new id', () => {
    const { t, id } = flying(['u1']);
    answer(t, id, 200);
    t.stored(); // removed
    t.fact({ type: 'flush', ask: 9 });
    const next = of(t.stored({ entries: [entry('u2')] }), 'send')[0]!;
    expect(next.id).toBeGreaterThan(id);
    expect(next.id).not.toBe(t.st.io?.id);
  });

  test('a list with more waiting after it: listed again once answered; with nothing new in it (all ending): the next window', () => {
    const { t, id } = (() => {
      const tt = loaded();
      tt.fact({ type: 'transport', result: 'ready' });
      tt.fact({ type: 'tick' }, 2000);
      const fx = tt.stored({ entries: [entry('u1')], more: true });
      return { t: tt, id: of(fx, 'send')[0]!.id };
    })();
    expect(t.st.pass).toBe('due');
    answer(t, id, 200);
    t.stored(); // removed
    expect(t.op()).toEqual({ op: 'list', limit: 100, mark: true });
    const none = loaded();
    none.fact({ type: 'transport', result: 'ready' });
    none.fact({ type: 'tick' }, 2000);
    none.stored({ entries: [], more: true });
    expect(none.st.pass).toBe(false);
    expect(none.st.timers.pass).toBe(none.now + SETTINGS.intervalMs);
  });

  test('a list while posthog-js is still loading: nothing sent; listed again once it is', () => {
    const t = loaded();
    t.fact({ type: 'tick' }, 2000); // what earlier pages left: a list
    const fx = t.stored({ entries: [entry('u1')] });
    expect(kinds(fx)).toContain('load-transport');
    expect(of(fx, 'send')).toEqual([]);
    expect(t.st.pass).toBe('due');
    t.fact({ type: 'transport', result: 'ready' });
    if (t.op()?.op === 'remove') t.stored(); // what an earlier step ended
    expect(t.op()?.op).toBe('list');
  });

  test('another tab\'s wait beyond 5 minutes is not trusted; a shorter one does not shorten a longer retry of ours', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    expect(of(t.stored({ entries: [entry('u1')], notBefore: WALL + t.now + 301_000 }), 'send')).toHaveLength(1);
    const u = loaded();
    u.fact({ type: 'transport', result: 'ready' });
    u.st.timers.retry = u.now + 50_000; // ours
    u.fact({ type: 'tick' }, 2000);
    u.st.pass = 'asked';
    u.fact({ type: 'online' }); // clears the retry: a list now
    u.st.timers.retry = u.now + 50_000;
    u.stored({ entries: [entry('u1')], notBefore: WALL + u.now + 10_000 });
    expect(u.st.timers.retry).toBe(u.now + 50_000);
  });

  test('first-run grace: nothing is delivered during the first page of a new id; a later page delivers', () => {
    const first = loaded({ firstSessionId: 'page' }, true, { firstRunGrace: true });
    expect(first.st.lead).toBe('idle');
    const later = loaded({ firstSessionId: 'earlier' }, true, { firstRunGrace: true });
    expect(later.st.lead).toBe('leading');
  });

  test('recorded after shutdown() was asked, or once closed: dropped, "shut down"', () => {
    const t = loaded();
    t.fact({ type: 'shutdown', ask: 1 });
    expect(audits(t.fact({ type: 'record', events: [event], uuids: ['u1'] }))).toEqual(['dropped: shut down']);
  });

  test('stamped: an event id for appended events only; the catalog\'s note kept; its bytes are the props and the rest as JSON', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event, { ...event, kind: 'Identify', name: '$identify', note: 'n' }], uuids: ['a', 'b'] });
    const a = t.st.outbox.known.get('a')!;
    const b = t.st.outbox.known.get('b')!;
    expect(a.eventId).toBe(1);
    expect(b.eventId).toBeUndefined();
    expect(b.note).toBe('n');
    expect(a.bytes).toBe(event.bytes + JSON.stringify({ ...a, props: null, bytes: 0 }).length);
  });

  test('what a write could not keep: evicted past the bounds ("full"), refused by the add rule (its reason)', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event, event], uuids: ['a', 'b'] });
    const fx = t.stored({ dropped: [entry('old')], refused: [entry('a', { cut: 1 }), entry('b', { distinctId: 'x' })] });
    expect(audits(fx).slice(0, 3)).toEqual([expect.stringMatching(/^dropped: outbox full/), 'dropped: recorded before the last opt-out or clear', 'dropped: cleared']);
  });

  test('a tab that does not deliver, its write done: tells the delivering tab, asking it to send now only if its host asked and nothing else waits to be written', () => {
    const t = loaded({}, false);
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(of(t.stored(), 'wrote')).toEqual([{ type: 'wrote', flush: false }]);
    t.fact({ type: 'record', events: [event], uuids: ['u2'] });
    t.fact({ type: 'flush', ask: 1 });
    expect(of(t.stored(), 'wrote')).toEqual([{ type: 'wrote', flush: true }]);
  });

  test('a write that fails: what it carried is this tab\'s alone again, and says why', () => {
    const t = loaded({}, false);
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    t.stored({ ok: false, error: 'QuotaExceededError: full' } as never);
    expect(t.st.outbox.unwritten.map((e) => e.uuid)).toEqual(['u1']);
    expect(t.st.outbox.stranded).toBe('IndexedDB write failed: QuotaExceededError: full');
  });
});

describe('the step, rule by rule', () => {
  test('closed (shut down): every later call is answered at once and does nothing; no timer fires', () => {
    const t = loaded();
    t.fact({ type: 'shutdown', ask: 1 });
    t.fact({ type: 'tick' }, 3000);
    expect(t.st.page).toBe('closed');
    expect(t.fact({ type: 'set-choice', enabled: false, ask: 2 })).toEqual([{ type: 'done', ask: 2 }]);
    expect(t.fact({ type: 'tick' }, 60_000)).toEqual([]);
    expect(t.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true })).toEqual([]);
  });

  test('shutdown(): answered once what it waited for is done, at most 3 s: flush and settle asks answered with it, the lock let go', () => {
    const { t } = flying(['u1']);
    t.fact({ type: 'flush', ask: 1 });
    expect(of(t.fact({ type: 'shutdown', ask: 2 }), 'done')).toEqual([]);
    expect(t.st.timers.shutdown).toBe(t.now + 3000);
    const fx = t.fact({ type: 'tick' }, 3000);
    expect(kinds(fx)).toEqual(['abort', 'lead', 'done', 'closed', 'done']);
    expect(of(fx, 'done').map((d) => d.ask)).toEqual([1, 2]);
    expect(t.st.lead).toBe('idle');
  });

  test('the retry timer and the reload timer bring a pass back; the quota timer does not', () => {
    const { t, id } = flying(['u1']);
    t.fact({ type: 'answer', id, status: 503, redirected: false, quotaLimited: false });
    t.stored(); // its removal with the not-before
    expect(t.st.pass).toBe(false);
    t.fact({ type: 'tick' }, 4500);
    expect(t.op()?.op).toBe('list');
    const q = loaded();
    q.st.timers.quota = q.now + 10;
    q.fact({ type: 'tick' }, 10);
    expect(q.st.pass).toBe(false);
  });

  test('heard "wrote (flush)" while asking to lead: a pass now; while following: nothing; "wrote" while leading: the flush window', () => {
    const asking = tab();
    asking.fact({ type: 'start' });
    asking.stored();
    expect(asking.st.lead).toBe('asking');
    asking.fact({ type: 'wrote', flush: true });
    expect(asking.st.pass).toBe('asked');
    const following = loaded({}, false);
    following.fact({ type: 'wrote', flush: true });
    expect(following.st.pass).toBe(false);
    const leading = loaded();
    leading.fact({ type: 'tick' }, 2000);
    leading.stored({ entries: [] });
    expect(leading.st.timers.pass).toBeUndefined();
    leading.fact({ type: 'wrote', flush: false });
    expect(leading.st.timers.pass).toBe(leading.now + SETTINGS.intervalMs);
    following.fact({ type: 'wrote', flush: false });
    expect(following.st.timers.pass).toBeUndefined();
  });

  test('a list that fails: said so; the sweep again, or the pass again with the storage retry; a mark that fails: nothing sent, again after a backoff', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    t.stored({ ok: false, error: 'AbortError: x' } as never);
    expect(t.st.lastError).toBe('IndexedDB read failed: AbortError: x');
    expect(t.st.timers.pass).toBe(t.st.timers.storage);
    const off = tab();
    off.fact({ type: 'start' });
    off.stored({ config: { ...CONFIG, choice: 'disabled' } });
    if (off.st.lead === 'asking') off.fact({ type: 'lead', leading: true });
    expect(off.op()).toMatchObject({ op: 'list', mark: false });
    off.stored({ ok: false, error: 'x' } as never);
    expect(off.st.pass).toBe('sweep');
  });

  test('a late "lead" answer after the tab let go of it: nothing; following after asking: what it wrote meanwhile is handed over ("wrote")', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: false, ask: 1 }); // lets go of the lead
    expect(t.st.lead).toBe('idle');
    t.fact({ type: 'lead', leading: true });
    expect(t.st.lead).toBe('idle');
    const f = tab();
    f.fact({ type: 'start' });
    f.fact({ type: 'record', events: [event], uuids: ['u1'] });
    f.stored(); // read: asking, writing
    f.stored(); // written
    expect(f.st.lead).toBe('asking');
    expect(of(f.fact({ type: 'lead', leading: false }), 'wrote')).toEqual([{ type: 'wrote', flush: false }]);
    expect(f.st.outbox.known.size).toBe(0);
  });

  test('posthog-js failed: the lead let go while its reload waits, asked again when it is due (failures count up); unusable: audited with the problem', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    t.fact({ type: 'transport', result: 'failed' });
    expect(t.st.lead).toBe('idle');
    expect(t.st.transport.failures).toBe(1);
    const wait = t.st.timers.reload! - t.now;
    t.fact({ type: 'tick' }, wait);
    expect(t.st.lead).toBe('asking');
    t.fact({ type: 'lead', leading: true });
    t.fact({ type: 'transport', result: 'failed' });
    expect(t.st.timers.reload! - t.now).toBe(2 * wait);
    t.fact({ type: 'transport', result: 'ready' });
    expect(t.st.transport.failures).toBe(0);
    const u = loaded();
    expect(audits(u.fact({ type: 'transport', result: 'unusable', problem: '_send_request missing' }))).toEqual(['dropped: posthog-js is not usable (_send_request missing): nothing is sent; events wait in the outbox']);
  });

  test('the page: hidden while closing stays closing; shown again after closing (the cache): a pass; restored: shown, read again', () => {
    const t = loaded();
    t.fact({ type: 'page', page: 'closing' });
    t.fact({ type: 'page', page: 'hidden' });
    expect(t.st.page).toBe('closing');
    t.fact({ type: 'page', page: 'shown' });
    expect(t.st.page).toBe('shown');
    expect(t.st.pass).not.toBe(false);
    const r = loaded();
    r.fact({ type: 'page', page: 'closing' });
    r.fact({ type: 'page', page: 'restored' });
    expect(r.st.page).toBe('shown');
    const hidden = loaded();
    hidden.fact({ type: 'page', page: 'hidden' });
    hidden.stored({ entries: [] });
    hidden.fact({ type: 'page', page: 'hidden' });
    expect(hidden.st.pass).toBe(false);
  });

  test('a re-read that holds sending keeps the lead (it is still this tab\'s once read); a page off for itself lets it go', () => {
    const t = loaded();
    t.fact({ type: 'page', page: 'restored' });
    expect(t.st.consent.told.reason).toBe('loading');
    expect(t.st.lead).toBe('leading');
    t.signals.embedderForbids = true;
    expect(of(t.fact({ type: 'tick' }), 'lead')).toEqual([{ type: 'lead', lead: false }]);
  });

  test('posthog-js is loaded only by the delivering tab with something waiting', () => {
    const idle = loaded();
    expect(idle.st.transport.state).toBe('not-loaded');
    const follower = loaded({}, false);
    follower.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(follower.st.transport.state).toBe('not-loaded');
    const leader = loaded();
    expect(kinds(leader.fact({ type: 'record', events: [event], uuids: ['u1'] }))).toContain('load-transport');
  });

  test('a follower asked to flush, nothing of its own waiting: asks the delivering tab once; the sweep turns into a pass when the no is lifted', () => {
    const f = loaded({}, false);
    expect(of(f.fact({ type: 'flush', ask: 1 }), 'wrote')).toEqual([{ type: 'wrote', flush: true }]);
    expect(f.st.pass).toBe(false);
    const t = loaded({ choice: 'disabled' });
    t.st.pass = 'sweep';
    t.fact({ type: 'heard', change: 'choice', choice: 'enabled' });
    t.stored({ config: { ...CONFIG, choice: 'enabled' } });
    expect(t.st.pass === 'sweep').toBe(false);
  });
});

describe('outcomes', () => {
  const ref = (uuid: string) => ({ uuid, kind: 'Append' as const, name: 'settings-opened' });

  test('one terminal entry per event: a second drop, send or unconfirmed of it says nothing', () => {
    const t = loaded();
    const c = { st: t.st, fx: [] as Effect[] } as never as Parameters<typeof dropRef>[0];
    dropRef(c, ref('u1'), 'a', true);
    dropRef(c, ref('u1'), 'b', true);
    unconfirmed(c, ref('u1'), 'c');
    sent(c, entry('u1'), {}, [], true);
    expect(audits(c.fx)).toEqual(['dropped: a']);
  });

  test('sent: attempts counted (1 when none were), notes joined', () => {
    const t = loaded();
    const c = { st: t.st, fx: [] as Effect[] } as never as Parameters<typeof dropRef>[0];
    sent(c, entry('u1'), {}, ['n1', undefined, 'n2'], true);
    t.st.outbox.attempts.set('u2', 3);
    sent(c, entry('u2'), {}, [], true);
    expect(of(c.fx, 'audit').map((a) => [a.entry.attempts, a.entry.reason])).toEqual([[1, 'n1; n2'], [3, undefined]]);
  });

  test('ended events are remembered, at most 2200: the oldest already removed from storage are forgotten first; those still to remove are kept', () => {
    const t = loaded();
    const c = { st: t.st, fx: [] as Effect[] } as never as Parameters<typeof dropRef>[0];
    dropRef(c, ref('stored'), 'r', true); // still to be removed
    for (let i = 0; i < 2200; i++) dropRef(c, ref(`m${i}`), 'r', false);
    expect(t.st.outbox.ended.size).toBe(2200);
    expect(t.st.outbox.ended.get('stored')).toBe(false);
    expect(t.st.outbox.ended.has('m0')).toBe(false);
    expect(t.st.outbox.ended.has('m1')).toBe(true);
    expect(t.st.outbox.ended.has('m2199')).toBe(true);
  });

  test('an opt-out ends what this tab holds: what is stored is removed from storage (a remove), what never was is not; an aborted request\'s events are unconfirmed and removed', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    t.stored({ entries: [entry('stored1'), entry('stored2')] }); // in flight: stored1, stored2 (batch 100)
    t.fact({ type: 'record', events: [event], uuids: ['writing'] }); // its write under way: it may land
    t.fact({ type: 'record', events: [event], uuids: ['mine'] }); // waits for that write: never stored
    t.fact({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true });
    expect(t.st.outbox.ended.get('stored1')).toBe(false);
    expect(t.st.outbox.ended.get('writing')).toBe(false);
    expect(t.st.outbox.ended.get('mine')).toBe(true);
  });
});

describe('the host\'s calls, answered', () => {
  test('flush() is answered once nothing it asked for is under way: not while the choice is unread, a write, a change or a list is, or a request flies', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(of(t.fact({ type: 'flush', ask: 1 }), 'done')).toEqual([]); // unread
    expect(of(t.stored(), 'done')).toEqual([]); // read: writing
    t.fact({ type: 'lead', leading: true });
    t.fact({ type: 'transport', result: 'ready' });
    expect(of(t.stored(), 'done')).toEqual([]); // written: a list
    const listed = t.stored({ entries: [t.st.outbox.known.get('u1')!] });
    expect(of(listed, 'done')).toEqual([]); // a request flies
    const answered = t.fact({ type: 'answer', id: of(listed, 'send')[0]!.id, status: 200, redirected: false, quotaLimited: false });
    expect(of(answered, 'done')).toEqual([{ type: 'done', ask: 1 }]);
  });

  test('shutdown() waits for a change being stored and for removals still due (3 s at most)', () => {
    const t = loaded();
    t.fact({ type: 'tick' }, 2000);
    t.stored({ entries: [] });
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 });
    t.fact({ type: 'shutdown', ask: 2 });
    expect(t.st.page).not.toBe('closed');
    expect(t.op()?.op).toBe('change');
    while (t.st.io) t.stored(); // the change stored (then what it asks for)
    expect(t.st.page).toBe('closed');
    const r = loaded();
    r.fact({ type: 'tick' }, 2000);
    r.stored({ entries: [] });
    r.st.outbox.ended.set('x', false); // a removal due
    r.fact({ type: 'shutdown', ask: 1 });
    expect(r.st.page).not.toBe('closed');
    r.fact({ type: 'tick' }, 3000);
    expect(r.st.page).toBe('closed');
  });
});

describe('storage ops, in order', () => {
  test('the order: the user\'s change first, then a read, then writes (at most writeChunk each), then removals (at most writeChunk), then a sweep, then a list', () => {
    const t = loaded({}, true, { writeChunk: 2 });
    t.fact({ type: 'tick' }, 2000);
    t.stored({ entries: [] });
    t.fact({ type: 'record', events: [event, event, event], uuids: ['a', 'b', 'c'] });
    expect(t.op()).toEqual({ op: 'add', entries: [expect.objectContaining({ uuid: 'a' }), expect.objectContaining({ uuid: 'b' })] });
    t.fact({ type: 'set-choice', enabled: true, ask: 1 });
    t.stored(); // a, b written
    expect(t.op()?.op).toBe('change');
    t.stored();
    expect(t.op()).toEqual({ op: 'add', entries: [expect.objectContaining({ uuid: 'c' })] });
    for (const u of ['x', 'y', 'z']) t.st.outbox.ended.set(u, false);
    t.stored();
    expect(t.op()).toEqual({ op: 'remove', uuids: ['x', 'y'], unmark: true });
  });

  test('storage failing: nothing is issued until its backoff is over, but a tab whose writes fail still marks what it sends itself', () => {
    const t = loaded({}, false);
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    t.stored({ ok: false, error: 'x' } as never); // the write fails: stranded, storage backing off
    expect(t.st.timers.storage).toBeDefined();
    t.fact({ type: 'flush', ask: 1 });
    expect(t.op()).toEqual({ op: 'mark', uuids: ['u1'] });
    t.stored({ ok: false, error: 'x' } as never); // the mark fails: nothing sent
    expect(t.st.flight).toBeUndefined();
    expect(t.st.timers.retry).toBeDefined();
  });

  test('a removal after a failed request tells the next tab the wait (a not-before, on the wall clock)', () => {
    const { t, id } = flying(['u1']);
    t.fact({ type: 'answer', id, status: 503, redirected: false, quotaLimited: false });
    expect(t.op()).toEqual({ op: 'remove', uuids: [], unmark: true, notBefore: WALL + t.st.timers.retry! });
  });

  test('posthog-js failed: what it finds is listed only once its reload is due', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    t.stored();
    t.fact({ type: 'transport', result: 'failed' });
    t.fact({ type: 'flush', ask: 1 });
    expect(t.op()).toBeUndefined();
  });
});

/** A tab whose write failed: it holds `uuids` itself (stranded), posthog-js loaded, storage backing off. */
function stranded(uuids = ['u1'], settings = {}): Tab {
  const t = loaded({}, false, settings);
  t.fact({ type: 'transport', result: 'ready' });
  t.fact({ type: 'record', events: uuids.map(() => event), uuids });
  t.stored({ ok: false, error: 'x' } as never);
  return t;
}

describe('the step, at its edges', () => {
  test('a new tab that reads storage and leads looks at what earlier pages left in its first flush window, not at once', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.stored();
    t.fact({ type: 'lead', leading: true });
    expect(t.op()).toBeUndefined();
    t.fact({ type: 'tick' }, 2000);
    expect(t.op()).toEqual({ op: 'list', limit: 100, mark: true });
  });

  test('flush() while the user said no and a sweep waits: the sweep is kept (what earlier pages left still ends)', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.stored({ config: { ...CONFIG, choice: 'disabled' } });
    t.stored({ ok: false, error: 'x' } as never); // the sweep's list fails: again after the backoff
    t.fact({ type: 'flush', ask: 1 });
    expect(t.st.pass).toBe('sweep');
    t.fact({ type: 'tick' }, t.st.timers.storage! - t.now);
    expect(t.op()).toEqual({ op: 'list', limit: 100, mark: false });
  });

  test('a read that could not keep what it found (evicted) says so here; each so dropped has nothing left to remove', () => {
    const t = tab();
    t.fact({ type: 'start' });
    expect(audits(t.stored({ dropped: [entry('old')] }))).toEqual([`dropped: ${'outbox full: the oldest waiting events are dropped'}`]);
    expect(t.st.outbox.ended.get('old')).toBe(true);
    const r = tab();
    r.fact({ type: 'start' });
    expect(audits(r.stored({ refused: [entry('other', { distinctId: 'gone' })] }))).toEqual(['dropped: cleared']);
    expect(r.st.outbox.ended.get('other')).toBe(true);
    const s = tab();
    s.fact({ type: 'start' });
    expect(audits(s.stored({ refused: [entry('same')] }))).toEqual(['dropped: cleared']); // refused for a reason the config read with it no longer shows
  });

  test('a storage failure other than a list\'s leaves the pass and the last list error alone; only a mark\'s arms the retry', () => {
    const t = loaded();
    t.st.outbox.ended.set('x', false);
    t.fact({ type: 'tick' });
    expect(t.op()?.op).toBe('remove');
    t.stored({ ok: false, error: 'x' } as never);
    expect(t.st.pass).toBe(false);
    expect(t.st.lastError).toBeUndefined();
    expect(t.st.timers.retry).toBeUndefined();
  });

  test('a list\'s failure is said in at most 200 characters, and said when it has no text', () => {
    const t = loaded();
    t.fact({ type: 'tick' }, 2000);
    t.stored({ ok: false, error: 'e'.repeat(300) } as never);
    expect(t.st.lastError).toBe(`IndexedDB read failed: ${'e'.repeat(200)}`);
    const u = loaded();
    u.fact({ type: 'tick' }, 2000);
    u.stored({ ok: false } as never);
    expect(u.st.lastError).toBe('IndexedDB read failed: ');
  });

  test('a removal that does not unmark (a request still flies) leaves the mark; the answer\'s removal unmarks', () => {
    const { t, id } = flying(['u1']);
    t.st.outbox.ended.set('x', false);
    t.fact({ type: 'tick' });
    expect(t.op()).toEqual({ op: 'remove', uuids: ['x'], unmark: false });
    t.stored();
    expect(t.st.outbox.marked).toBe(true);
    t.fact({ type: 'answer', id, status: 200, redirected: false, quotaLimited: false });
    expect(t.op()).toEqual({ op: 'remove', uuids: ['u1'], unmark: true });
  });

  test('a late "lead" answer after the tab let go of it changes nothing and says nothing', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: false, ask: 1 });
    t.stored();
    expect(t.fact({ type: 'lead', leading: true })).toEqual([]);
  });

  test('"leading" said again while leading arms no flush window; "leading" after asking hands nothing over', () => {
    const t = loaded();
    t.fact({ type: 'tick' }, 2000);
    t.stored({ entries: [] });
    expect(t.st.timers.pass).toBeUndefined();
    t.fact({ type: 'lead', leading: true });
    expect(t.st.timers.pass).toBeUndefined();
    const a = tab();
    a.fact({ type: 'start' });
    a.fact({ type: 'record', events: [event], uuids: ['u1'] });
    a.stored();
    a.stored(); // written while asking
    expect(kinds(a.fact({ type: 'lead', leading: true }))).not.toContain('wrote');
    expect(a.st.outbox.known.has('u1')).toBe(true);
  });

  test('following after asking with nothing written hands nothing over; with its host\'s flush pending, asks for a send now', () => {
    const a = tab();
    a.fact({ type: 'start' });
    a.stored();
    expect(of(a.fact({ type: 'lead', leading: false }), 'wrote')).toEqual([]);
    const f = tab();
    f.fact({ type: 'start' });
    f.fact({ type: 'record', events: [event], uuids: ['u1'] });
    f.stored();
    f.stored(); // written while asking
    f.fact({ type: 'flush', ask: 1 });
    expect(of(f.fact({ type: 'lead', leading: false }), 'wrote')).toEqual([{ type: 'wrote', flush: true }]);
    const l = loaded();
    l.st.outbox.known.set('s', entry('s')); // listed while leading
    l.st.lead = 'leading';
    expect(of(l.fact({ type: 'lead', leading: false }), 'wrote')).toEqual([]); // was leading: what it listed is storage's, no one to tell
  });

  test('posthog-js: its problem is kept; a load that worked audits nothing; unusable without a problem still says so', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'unusable', problem: 'p' });
    expect(t.st.transport.problem).toBe('p');
    expect(t.fact({ type: 'transport', result: 'ready' })).toEqual([]);
    const u = loaded();
    expect(of(u.fact({ type: 'transport', result: 'unusable' }), 'audit')).toEqual([{ type: 'audit', entry: { name: '(transport)', outcome: 'dropped', reason: 'posthog-js is not usable (): nothing is sent; events wait in the outbox' } }]);
  });

  test('the page: back from closing (restored) holds sending until read, with no pass of its own; hidden again, or shown again, asks for none', () => {
    const r = loaded();
    r.fact({ type: 'page', page: 'closing' });
    r.fact({ type: 'page', page: 'restored' });
    expect(r.st.pass).toBe(false);
    const h = loaded();
    h.fact({ type: 'page', page: 'hidden' });
    expect(h.st.page).toBe('hidden');
    h.stored({ entries: [] });
    h.fact({ type: 'page', page: 'hidden' });
    expect(h.op()).toBeUndefined();
    const s = loaded();
    s.fact({ type: 'page', page: 'shown' });
    expect(s.op()).toBeUndefined();
  });

  test('letting go of the lead forgets what storage holds (the next delivering tab\'s); what only this tab holds is kept', () => {
    const t = loaded();
    t.fact({ type: 'tick' }, 2000);
    t.stored({ entries: [entry('s1')] }); // listed: known (posthog-js not loaded)
    expect(t.st.outbox.known.has('s1')).toBe(true);
    t.signals.embedderForbids = true;
    t.fact({ type: 'tick' });
    expect(t.st.lead).toBe('idle');
    expect(t.st.outbox.known.has('s1')).toBe(false);
  });

  test('posthog-js is being loaded: said so; a tab whose writes fail does not load it again while its reload waits', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(t.st.transport.state).toBe('loading');
    const s = loaded({}, false);
    s.fact({ type: 'record', events: [event], uuids: ['u1'] });
    s.stored({ ok: false, error: 'x' } as never); // stranded: it delivers its own
    expect(kinds(s.fact({ type: 'transport', result: 'failed' }))).not.toContain('load-transport');
    expect(kinds(s.fact({ type: 'tick' }, s.st.timers.reload! - s.now))).toContain('load-transport');
  });

  test('a sweep that waited while the user said no becomes a pass once the no is lifted: a list that marks', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.stored({ config: { ...CONFIG, choice: 'disabled' } });
    t.stored({ ok: false, error: 'x' } as never); // the sweep waits for the backoff
    t.fact({ type: 'set-choice', enabled: true, ask: 1 });
    t.fact({ type: 'tick' }, t.st.timers.storage! - t.now);
    t.stored(); // the opt-in stored
    if (t.st.lead === 'asking') t.fact({ type: 'lead', leading: true });
    expect(t.op()).toEqual({ op: 'list', limit: 100, mark: true });
  });

  test('a follower asked to flush waits for its own write before asking the delivering tab, then asks once', () => {
    const f = loaded({}, false);
    f.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 }); // a change under way: the write waits
    f.fact({ type: 'record', events: [event], uuids: ['u1'] });
    const early = f.fact({ type: 'flush', ask: 2 });
    expect(of(early, 'wrote')).toEqual([]);
    const wrote = [...f.stored(), ...f.stored()].filter((e) => e.type === 'wrote');
    expect(wrote).toEqual([{ type: 'wrote', flush: true }]);
  });

  test('a follower\'s flush window (what it wrote is handed over) asks no one; a tab in its first-run grace asks no one either', () => {
    const f = loaded({}, false);
    f.fact({ type: 'record', events: [event], uuids: ['u1'] });
    f.stored();
    expect(of(f.fact({ type: 'tick' }, 2000), 'wrote')).toEqual([]);
    const g = tab({ firstRunGrace: true, sessionId: 's1' });
    g.fact({ type: 'start' });
    g.stored({ config: { ...CONFIG, firstSessionId: 's1' } });
    expect(g.st.lead).toBe('idle');
    expect(of(g.fact({ type: 'flush', ask: 1 }), 'wrote')).toEqual([]);
  });

  test.each(['hung', 'unusable', 'failed'] as const)('flush() while posthog-js is %s: nothing to wait for, answered at once', (result) => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    t.stored();
    t.fact({ type: 'transport', result });
    expect(of(t.fact({ type: 'flush', ask: 1 }), 'done')).toEqual([{ type: 'done', ask: 1 }]);
    expect(t.op()).toBeUndefined();
  });

  test('flush() while a retry waits: answered at once (the retry brings the pass back)', () => {
    const { t, id } = flying(['u1']);
    t.fact({ type: 'answer', id, status: 503, redirected: false, quotaLimited: false });
    t.stored();
    expect(of(t.fact({ type: 'flush', ask: 1 }), 'done')).toEqual([{ type: 'done', ask: 1 }]);
  });

  test('flush() while posthog-js is still loading: not answered, nothing listed, until it is loaded', () => {
    const t = loaded();
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    t.stored();
    expect(t.st.transport.state).toBe('loading');
    expect(of(t.fact({ type: 'flush', ask: 1 }), 'done')).toEqual([]);
    expect(t.op()).toBeUndefined();
    t.fact({ type: 'transport', result: 'ready' });
    expect(t.op()).toEqual({ op: 'list', limit: 100, mark: true });
  });

  test('flush() while a request flies: nothing listed until it is answered', () => {
    const { t } = flying(['u1']);
    t.fact({ type: 'flush', ask: 1 });
    expect(t.op()).toBeUndefined();
  });

  test('flush() is not answered while a write or a list it waits on is under way', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(t.op()?.op).toBe('add');
    expect(of(t.fact({ type: 'flush', ask: 1 }), 'done')).toEqual([]);
    expect(of(t.stored(), 'done')).toEqual([]);
    expect(t.op()?.op).toBe('list');
    expect(of(t.fact({ type: 'tick' }), 'done')).toEqual([]);
  });

  test('a tab whose writes fail: no mark while its request flies, a retry waits, or posthog-js is not ready; at most a batch marked; it marks once', () => {
    const s = stranded(['a', 'b', 'c'], { batch: 2 });
    s.fact({ type: 'flush', ask: 1 });
    expect(s.op()).toEqual({ op: 'mark', uuids: ['a', 'b'] });
    expect(s.st.pass).toBe(false);
    const fx = s.stored();
    expect(of(fx, 'send')[0]!.batch.map((w) => w.uuid)).toEqual(['a', 'b']);
    s.fact({ type: 'flush', ask: 2 });
    expect(s.op()).toBeUndefined(); // its request flies
    const r = stranded(['a']);
    r.st.timers.retry = r.now + 5000;
    r.fact({ type: 'flush', ask: 1 });
    expect(r.op()).toBeUndefined();
    const n = stranded(['a']);
    n.fact({ type: 'transport', result: 'hung' });
    n.fact({ type: 'flush', ask: 1 });
    expect(n.op()).toBeUndefined();
  });

  test('a list or a mark answered more than 10 s after it was asked for (a frozen or busy tab): nothing sent on it; marked again at once', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    expect(of(t.stored({ entries: [entry('a')] }, 10_001), 'send')).toEqual([]);
    while (t.op()?.op === 'remove') t.stored(); // its mark let go
    expect(t.op()).toEqual({ op: 'list', limit: 100, mark: true });
    expect(of(t.stored({ entries: [entry('a')] }, 10_000), 'send')).toHaveLength(1);
    const s = stranded(['a']);
    s.fact({ type: 'flush', ask: 1 });
    expect(of(s.stored({}, 10_001), 'send')).toEqual([]);
    expect(s.op()).toEqual({ op: 'mark', uuids: ['a'] });
    expect(of(s.stored(), 'send')).toHaveLength(1);
  });

  test('a list answered at once by the monotonic clock but an hour later by the wall clock (the machine slept): nothing sent on it', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    t.offset = 3_600_000;
    expect(of(t.stored({ entries: [entry('a')] }), 'send')).toEqual([]);
  });

  test('a follower whose writes fail, asked to flush, following after asking: tells the delivering tab to send now, and still marks its own', () => {
    const f = tab();
    f.fact({ type: 'start' });
    f.fact({ type: 'record', events: [event], uuids: ['stored'] });
    f.stored();
    f.stored(); // written while asking
    f.fact({ type: 'record', events: [event], uuids: ['mine'] });
    f.stored({ ok: false, error: 'x' } as never); // this write fails: stranded (posthog-js still loading)
    f.fact({ type: 'flush', ask: 1 });
    expect(of(f.fact({ type: 'lead', leading: false }), 'wrote')).toEqual([{ type: 'wrote', flush: true }]);
    f.fact({ type: 'transport', result: 'ready' });
    expect(f.op()).toEqual({ op: 'mark', uuids: ['mine'] });
  });

  test('a tab whose writes fail sends only what its mark named, and only if it still may: not once posthog-js failed or the page is off meanwhile', () => {
    const t = stranded(['a']);
    t.fact({ type: 'flush', ask: 1 });
    t.fact({ type: 'record', events: [event], uuids: ['b'] }); // after the mark was asked for
    expect(of(t.stored(), 'send')[0]!.batch.map((w) => w.uuid)).toEqual(['a']);
    expect(t.st.outbox.marked).toBe(true);
    const f = stranded(['a']);
    f.fact({ type: 'flush', ask: 1 });
    f.fact({ type: 'transport', result: 'failed' });
    expect(of(f.stored(), 'send')).toEqual([]);
    const e = stranded(['a']);
    e.fact({ type: 'flush', ask: 1 });
    e.signals.embedderForbids = true;
    expect(of(e.stored(), 'send')).toEqual([]);
  });

  test('a tab whose writes fail: when writes work again, what its request carries is not written again; once sent, nothing of it is left to remove', () => {
    const t = stranded(['a']);
    t.fact({ type: 'flush', ask: 1 });
    const id = of(t.stored(), 'send')[0]!.id;
    t.fact({ type: 'record', events: [event], uuids: ['b'] });
    t.fact({ type: 'tick' }, t.st.timers.storage! - t.now);
    expect(t.op()).toEqual({ op: 'add', entries: [expect.objectContaining({ uuid: 'b' })] });
    t.fact({ type: 'answer', id, status: 200, redirected: false, quotaLimited: false });
    expect(t.st.outbox.ended.get('a')).toBe(true);
    expect(t.st.outbox.unwritten.map((e) => e.uuid)).toEqual([]);
  });

  test('a write that fails: said in at most 200 characters, and said when it has no text; what ended meanwhile is not taken back', () => {
    const t = loaded({}, false);
    t.fact({ type: 'record', events: [event, event], uuids: ['a', 'b'] });
    t.stored({ ok: false, error: 'e'.repeat(300) } as never);
    expect(t.st.outbox.stranded).toBe(`IndexedDB write failed: ${'e'.repeat(200)}`);
    const u = loaded({}, false);
    u.fact({ type: 'record', events: [event, event], uuids: ['a', 'b'] });
    u.fact({ type: 'set-choice', enabled: false, ask: 1 }); // ends a and b while their write is under way
    u.stored({ ok: false } as never);
    expect(u.st.outbox.stranded).toBe('IndexedDB write failed: unknown');
    expect(u.st.outbox.unwritten).toEqual([]);
  });

  test('a metadata change is stored under no journal id (only a cut is applied once by id)', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 });
    expect(t.op()).toEqual({ op: 'change', change: { metadata: { a: 1 } } });
  });

  test('shutdown(): an idle tab lets go of no lock; a waiting shutdown still wakes at its deadline; a closed one wakes never', () => {
    const t = loaded({}, false);
    t.fact({ type: 'set-choice', enabled: false, ask: 1 });
    while (t.st.io) t.stored({ entries: [] }); // stored, then what it swept
    expect(t.st.lead).toBe('idle');
    expect(of(t.fact({ type: 'shutdown', ask: 2 }), 'lead')).toEqual([]);
    expect(t.st.page).toBe('closed');
    const { t: l } = flying(['u1']);
    l.fact({ type: 'shutdown', ask: 1 });
    expect(l.wakes).toEqual([l.now + 3000]);
    const fx = l.fact({ type: 'tick' }, 3000);
    expect(of(fx, 'lead')).toEqual([{ type: 'lead', lead: false }]);
    expect(l.wakes).toEqual([undefined]);
  });

  test('shutdown() waits for an opt-out not stored yet (its storage backing off), at most 3 s', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: false, ask: 1 });
    t.stored({ ok: false, error: 'x' } as never);
    t.fact({ type: 'shutdown', ask: 2 });
    expect(t.st.page).not.toBe('closed');
    t.fact({ type: 'tick' }, 3000);
    expect(t.st.page).toBe('closed');
  });
});

describe('consent, at its edges', () => {
  test('heard another tab\'s cut while a cut of ours is not stored: everything ends, even what we stamped after ours (its number was a guess the other cut may have taken)', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' }); // a read under way: our change waits
    t.fact({ type: 'clear', analyticsId: 'new', ask: 1 });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(t.st.outbox.known.get('u1')?.cut).toBe(1);
    expect(audits(t.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true, cut: 1 }))).toEqual(['dropped: cleared']);
  });

  test('storage unreadable stays unreadable when a message comes (not "loading"): the next read that works says', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.stored({ ok: false, error: 'x' } as never);
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    expect(t.st.consent.told.reason).toBe('storage-unavailable');
  });

  test('an opt-out merged into a metadata change waiting behind another write cuts once, in memory now', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 }); // under way
    t.fact({ type: 'set-metadata', metadata: { b: 1 }, ask: 2 }); // waits
    t.fact({ type: 'set-choice', enabled: false, ask: 3 }); // merged into the waiting one
    expect(t.st.changes).toHaveLength(2);
    expect(t.st.consent.config.cut).toBe(1);
  });

  test('heard: an opt-out announced without emptying (a superseded opt-in\'s write failed) still ends what this tab holds', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' }); // a read under way: the next write waits
    t.fact({ type: 'record', events: [event], uuids: ['u1'] });
    expect(audits(t.fact({ type: 'heard', change: 'choice', choice: 'disabled' }))).toEqual(['dropped: user-opted-out']);
  });

  test('heard: an opt-out while only metadata of ours waits: nothing superseded', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 });
    t.fact({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true });
    expect(t.st.changes.map((ch) => ch.choice)).toEqual([undefined]);
  });

  test('heard: metadata (announced with the choice "enabled") does not lift an opt-out heard before it', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true });
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    while (t.st.io) t.stored({ config: CONFIG, entries: [] });
    expect(t.st.consent.told.enabled).toBe(false);
  });

  test('our own metadata or clear stored does not lift an opt-out heard before it (only a choice of ours does)', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true });
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 });
    while (t.st.io) t.stored({ config: CONFIG, entries: [] });
    expect(t.st.consent.told.enabled).toBe(false);
  });

  test('an opt-in made before the first read comes after the opt-out that read finds: not superseded', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.fact({ type: 'set-choice', enabled: true, ask: 1 });
    t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 2 } });
    expect(t.st.changes.map((ch) => ch.choice)).toEqual(['enabled']);
    expect(t.st.changes[0]!.base).toBe(2);
  });

  test('an opt-in waiting while a clear elsewhere is read (not an opt-out): not superseded', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 });
    t.fact({ type: 'set-choice', enabled: true, ask: 2 });
    t.stored({ config: { ...CONFIG, cut: 1 } });
    expect(t.st.changes.map((ch) => ch.choice)).toEqual(['enabled']);
  });

  test('a read showing a later cut stops a request carrying what came before it, not what came under it', () => {
    const { t, id } = flying(['u1']);
    t.st.outbox.known.set('k', entry('k', { cut: 1 })); // stored under that cut (another tab's, listed)
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    const fx = t.stored({ config: { ...CONFIG, cut: 1 } });
    expect(of(fx, 'abort')).toEqual([{ type: 'abort', id }]);
    expect(t.st.outbox.known.has('k')).toBe(true);
    const later = loaded({ cut: 1 });
    later.fact({ type: 'transport', result: 'ready' });
    later.fact({ type: 'tick' }, 2000);
    later.stored({ entries: [entry('u1', { cut: 1 }), entry('u2', { cut: 1 })], more: false, config: { ...CONFIG, cut: 1 } });
    later.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    expect(of(later.stored({ config: { ...CONFIG, cut: 1 } }), 'abort')).toEqual([]);
  });

  test('a request carrying what came before and after a cut read now is stopped', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    const id = of(t.stored({ entries: [entry('u1', { cut: 1 }), entry('u0', { cut: 0 })], config: { ...CONFIG, cut: 0 } }), 'send')[0]!.id;
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    expect(of(t.stored({ config: { ...CONFIG, cut: 1 } }), 'abort')).toEqual([{ type: 'abort', id }]);
  });

  test('the delivering tab\'s own change stored (no re-read held) arms no flush window; a follower\'s held re-read arms none either', () => {
    const t = loaded();
    t.fact({ type: 'tick' }, 2000);
    t.stored({ entries: [] });
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 });
    t.stored();
    expect(t.st.timers.pass).toBeUndefined();
    const f = loaded({}, false);
    f.fact({ type: 'storage-lost' });
    f.stored();
    expect(f.st.timers.pass).toBeUndefined();
  });

  test('a clear stored: what it emptied that no tab was sending has nothing left to remove; metadata stored leaves removals due', () => {
    const t = loaded();
    t.fact({ type: 'clear', analyticsId: 'new', ask: 1 });
    t.stored({ dropped: [entry('s')], flying: [] });
    expect(t.st.outbox.ended.get('s')).toBe(true);
    const m = loaded();
    m.st.outbox.ended.set('x', false);
    m.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 });
    m.stored();
    expect(m.op()).toEqual({ op: 'remove', uuids: ['x'], unmark: true });
  });

  test('a read whose others fly, with no opt-out waiting, arms no timer', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    t.stored({ othersFlying: true });
    expect(t.st.timers.settle).toBeUndefined();
  });

  test('the site data cleared, its cut stored while other tabs fly: no host call waits, so no timer is armed', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    t.stored({ created: true });
    t.stored({ othersFlying: true });
    expect(t.st.timers.settle).toBeUndefined();
    expect(t.st.timers.settleBy).toBeUndefined();
  });

  test('the site data cleared: the cut stored for it answers no host call, under an id of its own', () => {
    const t = loaded();
    t.fact({ type: 'set-metadata', metadata: { a: 1 }, ask: 1 });
    t.stored();
    const last = t.st.ids;
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    t.stored({ created: true });
    expect(t.st.changes[0]!.id).toBeGreaterThan(last);
    expect(of(t.stored(), 'done')).toEqual([]);
  });

  test('an opt-out with no cut (one that supersedes an opt-in) whose write fails is still announced', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: true, ask: 1 }); // under way
    t.fact({ type: 'heard', change: 'choice', choice: 'disabled', emptied: true });
    t.stored(); // the opt-in stored; the opt-out that supersedes it next
    expect(t.op()).toMatchObject({ op: 'change', change: { choice: 'disabled' } });
    expect(of(t.stored({ ok: false, error: 'x' } as never), 'announce')).toEqual([{ type: 'announce', change: 'choice', choice: 'disabled' }]);
  });

  test('the site data cleared, and the cut that follows cannot be stored: announced as a clear', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    t.stored({ created: true });
    expect(of(t.stored({ ok: false, error: 'x' } as never), 'announce')).toEqual([{ type: 'announce', change: 'clear', choice: 'unset', emptied: true }]);
  });

  test('closing with an opt-out being stored and an opt-in after it: the opt-out is announced as one', () => {
    const t = loaded();
    t.fact({ type: 'set-choice', enabled: false, ask: 1 });
    t.fact({ type: 'set-choice', enabled: true, ask: 2 });
    expect(of(t.fact({ type: 'page', page: 'closing' }), 'announce')).toEqual([{ type: 'announce', change: 'choice', choice: 'disabled', emptied: true }]);
  });

  test('a read showing an opt-out made elsewhere (not heard): what this tab has not written yet ends, with the reason', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    t.fact({ type: 'record', events: [event], uuids: ['u1'] }); // waits for the read
    expect(audits(t.stored({ config: { ...CONFIG, choice: 'disabled', cut: 1 } }))).toEqual(['dropped: user-opted-out']);
  });
});

describe('outcomes and delivery, at their edges', () => {
  test('dropped before ever being stored: nothing to remove (held, recorded after shutdown(), too many held)', () => {
    const h = tab();
    h.fact({ type: 'start' });
    h.fact({ type: 'record', events: [event], uuids: ['held'] });
    h.fact({ type: 'set-choice', enabled: false, ask: 1 });
    expect(h.st.outbox.ended.get('held')).toBe(true);
    const s = loaded();
    s.fact({ type: 'tick' }, 2000);
    s.stored({ entries: [] });
    s.fact({ type: 'set-metadata', metadata: {}, ask: 1 });
    s.fact({ type: 'shutdown', ask: 2 });
    s.fact({ type: 'record', events: [event], uuids: ['late'] });
    expect(s.st.outbox.ended.get('late')).toBe(true);
    const m = tab();
    m.fact({ type: 'start' });
    const uuids = Array.from({ length: 501 }, (_, i) => `u${i}`);
    m.fact({ type: 'record', events: uuids.map(() => event), uuids });
    expect(m.st.outbox.ended.get('u500')).toBe(true);
  });

  test('a clear heard with its cut: a request carrying only what came under it goes on; one carrying both is stopped; what came after waits', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    t.stored({ entries: [entry('a', { cut: 1 })] });
    t.st.outbox.unwritten.push(entry('v', { cut: 0 }), entry('w', { cut: 1 }));
    const fx = t.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true, cut: 1 });
    expect(of(fx, 'abort')).toEqual([]);
    expect(of(fx, 'audit').map((a) => a.entry.uuid)).toEqual(['v']);
    expect(t.st.outbox.unwritten.map((e) => e.uuid)).toEqual(['w']);
    const m = loaded();
    m.fact({ type: 'transport', result: 'ready' });
    m.fact({ type: 'tick' }, 2000);
    m.stored({ entries: [entry('a', { cut: 1 }), entry('b', { cut: 0 })] });
    expect(of(m.fact({ type: 'heard', change: 'clear', choice: 'unset', emptied: true, cut: 1 }), 'abort')).toHaveLength(1);
  });

  test('held while the choice is read: the clock is judged set only past 1 s of drift; without a cut, a set clock ends nothing', () => {
    const held = (drift: number, config: Partial<StoredConfig>) => {
      const t = tab();
      t.fact({ type: 'start' });
      t.fact({ type: 'record', events: [{ ...event, time: WALL + 5000 }], uuids: ['u1'] }, 5000);
      t.offset = drift;
      return audits(t.stored({ config: { ...CONFIG, ...config } }, 2000));
    };
    const cut = { cutAt: WALL, cut: 1 }; // made before the event
    expect(held(0, cut)).toEqual([]);
    expect(held(1000, cut)).toEqual([]);
    expect(held(-1000, cut)).toEqual([]);
    expect(held(1001, cut)).toEqual(['dropped: recorded before the last opt-out or clear']);
    expect(held(-1001, cut)).toEqual(['dropped: recorded before the last opt-out or clear']);
    expect(held(-3_600_000, {})).toEqual([]);
  });

  test('more recorded than the outbox holds while one write waits: the oldest dropped ("full"), never stored', () => {
    const fill = (n: number) => {
      const t = loaded();
      t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' }); // a read under way: the write waits
      const uuids = Array.from({ length: n }, (_, i) => `u${i}`);
      return { t, fx: t.fact({ type: 'record', events: uuids.map(() => event), uuids }) };
    };
    expect(audits(fill(1000).fx)).toEqual([]);
    const { t, fx } = fill(1001);
    expect(audits(fx)).toEqual(['dropped: outbox full: the oldest waiting events are dropped']);
    expect(t.st.outbox.ended.get('u0')).toBe(true);
  });

  test('a list: an expired entry is dropped and removed; over quota, dropped as quota-limited; nothing left, no request', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    const fx = t.stored({ entries: [entry('old', { at: WALL - 8 * 86_400_000, queuedAt: WALL - 8 * 86_400_000 })] });
    expect(of(fx, 'send')).toEqual([]);
    expect(t.op()).toEqual({ op: 'remove', uuids: ['old'], unmark: true });
    const q = loaded();
    q.fact({ type: 'transport', result: 'ready' });
    q.st.timers.quota = q.now + 60_000;
    q.fact({ type: 'tick' }, 2000);
    expect(audits(q.stored({ entries: [entry('q')] }))).toEqual(['dropped: quota-limited: the endpoint said the project is over its quota (for a minute)']);
  });

  test('a list: without entries marks nothing; another tab\'s wait of exactly 5 minutes is kept', () => {
    const t = loaded();
    t.fact({ type: 'tick' }, 2000);
    t.stored({ entries: undefined });
    expect(t.st.outbox.marked).toBe(false);
    const w = loaded();
    w.fact({ type: 'tick' }, 2000);
    w.stored({ entries: [], notBefore: WALL + w.now + 300_000 });
    expect(w.st.timers.retry).toBe(w.now + 300_000);
  });

  test('a list with more after it: all of it ending already — the next window, not again at once; something new — again once answered', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.st.outbox.ended.set('e', false);
    t.st.outbox.ended.set('e2', false);
    t.fact({ type: 'tick' }, 2000);
    while (t.op()?.op === 'remove') t.stored();
    t.st.outbox.ended.set('e', true);
    expect(t.op()?.op).toBe('list');
    t.stored({ entries: [entry('e')], more: true });
    expect(t.op()?.op).toBe('remove');
    t.stored();
    expect(t.op()).toBeUndefined();
    expect(t.st.timers.pass).toBe(t.now + 2000);
    const n = loaded();
    n.fact({ type: 'transport', result: 'ready' });
    n.fact({ type: 'tick' }, 2000);
    const id = of(n.stored({ entries: [entry('a')], more: true }), 'send')[0]!.id;
    n.fact({ type: 'answer', id, status: 200, redirected: false, quotaLimited: false });
    n.stored(); // the removal
    expect(n.op()).toEqual({ op: 'list', limit: 100, mark: true });
  });

  test('a sweep with more after it: again at once while it drops; with all of it ending already, the next window', () => {
    const t = tab();
    t.fact({ type: 'start' });
    t.stored({ config: { ...CONFIG, choice: 'disabled' } });
    t.stored({ entries: [entry('a')], more: true });
    expect(t.op()).toEqual({ op: 'remove', uuids: ['a'], unmark: true });
    t.stored();
    expect(t.op()).toEqual({ op: 'list', limit: 100, mark: false });
    t.st.outbox.ended.set('a', true);
    t.stored({ entries: [entry('a')], more: true }); // a late copy of what ended: removed again, nothing new
    t.stored();
    expect(t.op()).toBeUndefined();
  });

  test('a list answered while storage is read again (holding): nothing sent; listed again at once once read', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    t.fact({ type: 'storage-lost' });
    expect(of(t.stored({ entries: [entry('a')] }), 'send')).toEqual([]);
    t.stored(); // the read
    while (t.op()?.op === 'remove') t.stored(); // its mark let go
    expect(t.op()).toEqual({ op: 'list', limit: 100, mark: true });
  });

  test('storage ops and requests are numbered in one increasing sequence', () => {
    const t = loaded();
    t.fact({ type: 'transport', result: 'ready' });
    const ids: number[] = [];
    const note = (fx: Effect[]) => fx.forEach((e) => (e.type === 'storage' || e.type === 'send') && ids.push(e.id));
    note(t.fact({ type: 'tick' }, 2000));
    const fx = t.stored({ entries: [entry('a')] });
    note(fx);
    note(t.fact({ type: 'record', events: [event], uuids: ['b'] }));
    note(t.stored());
    note(t.fact({ type: 'answer', id: of(fx, 'send')[0]!.id, status: 200, redirected: false, quotaLimited: false }));
    expect(ids.length).toBeGreaterThanOrEqual(4);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('attempts are counted for 2200 events at most: the oldest forgotten first, those just sent kept', () => {
    const t = loaded();
    for (let i = 0; i < 2200; i++) t.st.outbox.attempts.set(`o${i}`, 1);
    t.fact({ type: 'transport', result: 'ready' });
    t.fact({ type: 'tick' }, 2000);
    t.stored({ entries: [entry('a')] });
    expect(t.st.outbox.attempts.size).toBe(2200);
    expect(t.st.outbox.attempts.get('a')).toBe(1);
    expect(t.st.outbox.attempts.has('o0')).toBe(false);
    expect(t.st.outbox.attempts.has('o1')).toBe(true);
  });

  test('closing: what was held through a re-read is journaled as early; never read, nothing held is journaled; what ended in a write under way is not journaled', () => {
    const t = loaded();
    t.fact({ type: 'page', page: 'restored' }); // reads again, holding
    t.fact({ type: 'record', events: [event], uuids: ['h'] });
    expect(of(t.fact({ type: 'page', page: 'closing' }), 'journal')[0]!.entries).toEqual([expect.objectContaining({ uuid: 'h', early: true })]);
    const n = tab();
    n.fact({ type: 'start' });
    n.fact({ type: 'record', events: [event], uuids: ['h'] });
    expect(of(n.fact({ type: 'page', page: 'closing' }), 'journal')[0]!.entries).toEqual([]);
    const w = loaded();
    w.fact({ type: 'record', events: [event], uuids: ['w'] });
    expect(w.op()?.op).toBe('add');
    w.fact({ type: 'set-choice', enabled: false, ask: 1 });
    expect(of(w.fact({ type: 'page', page: 'closing' }), 'journal')[0]!.entries).toEqual([]);
  });

  test('a cut journaled keeps only what must survive: a clear its new id, an opt-out its choice; never an opt-in', () => {
    const t = loaded();
    t.fact({ type: 'heard', change: 'metadata', choice: 'enabled' }); // a read under way: the changes wait
    t.fact({ type: 'clear', analyticsId: 'new', ask: 1 });
    expect(of(t.fact({ type: 'page', page: 'closing' }), 'journal')[0]!.changes.map((c) => c.change)).toStrictEqual([{ cutAt: WALL + t.now, analyticsId: 'new' }]);
    const o = loaded();
    o.fact({ type: 'heard', change: 'metadata', choice: 'enabled' });
    o.fact({ type: 'set-choice', enabled: false, ask: 1 });
    o.fact({ type: 'set-choice', enabled: true, ask: 2 }); // merged: an opt-in with the opt-out's cut
    expect(of(o.fact({ type: 'page', page: 'closing' }), 'journal')[0]!.changes.map((c) => c.change)).toStrictEqual([{ cutAt: WALL + o.now }]);
  });
});
