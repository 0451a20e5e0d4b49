// The storage contract, differentially: random sequences of operations from two pages, on the
// real store (src/store.ts: IndexedDB and localStorage, in Chromium) and on the contract's
// in-memory implementation (test/model/storage.ts, the model's storage), results compared after
// every operation. Faults too: a disk that refuses every put, a clock that moves, an older build's
// outbox, the journal a closing page leaves, the facade's journaled opt-out. A fresh seed each
// run, printed on failure (CONTRACT_SEED replays one).
import fc from 'fast-check';
import { beforeEach, expect, test } from 'vitest';
import { LEGACY_OUTBOX, type ConfigChange, type OutboxEntry, type StorageOp, type StorageResult } from '../../src/core/contract';
import { journalLeaving, runStorageOp } from '../../src/store';
import { ContractStore } from '../model/storage';
import { db, resetStorage } from './helpers';

const RUNS = 200;
const SEED = Number(import.meta.env.VITE_CONTRACT_SEED ?? (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0);
const ENDPOINT = { projectKey: 'phc_contract', apiHost: 'https://contract.test' };
const PAGES = ['page-a', 'page-b'];

type Op =
  | { t: 'op'; page: number; op: StorageOp }
  | { t: 'add'; page: number; uuids: number[]; stale: 0 | 1 | 2 }
  | { t: 'remove'; page: number; uuids: number[]; unmark: boolean; wait: number | undefined }
  | { t: 'journal'; page: number; uuids: number[]; cut: boolean }
  | { t: 'older'; uuids: number[] }
  | { t: 'clock'; ms: number }
  | { t: 'full'; on: boolean };

const uuid = (n: number) => `0190c7a0-0000-7000-8000-${String(n).padStart(12, '0')}`;
const uuidsArb = fc.uniqueArray(fc.nat(30), { minLength: 1, maxLength: 6 });
const olderArb = fc.uniqueArray(fc.nat(9), { minLength: 1, maxLength: 4 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('op' as const), page: fc.nat(1), op: fc.constant({ op: 'read' } as StorageOp) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('op' as const), page: fc.nat(1), op: fc.constantFrom<StorageOp>({ op: 'change', change: { choice: 'disabled', choiceTime: 'a', cutAt: 1 } }, { op: 'change', change: { choice: 'enabled', choiceTime: 'b' } }, { op: 'change', change: { metadata: { team: 'x' } } }, { op: 'change', change: { analyticsId: 'cleared-id', cutAt: 2 } }) }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('add' as const), page: fc.nat(1), uuids: uuidsArb, stale: fc.constantFrom<0 | 1 | 2>(0, 0, 0, 1, 2) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('op' as const), page: fc.nat(1), op: fc.record({ op: fc.constant('list' as const), limit: fc.integer({ min: 1, max: 8 }), mark: fc.boolean() }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('remove' as const), page: fc.nat(1), uuids: fc.uniqueArray(fc.nat(30), { maxLength: 6 }), unmark: fc.boolean(), wait: fc.option(fc.integer({ min: -1000, max: 400_000 }), { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('journal' as const), page: fc.nat(1), uuids: fc.uniqueArray(fc.nat(30), { maxLength: 4 }), cut: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('older' as const), uuids: olderArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('clock' as const), ms: fc.constantFrom(1000, 46_000, -3_600_000) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('full' as const), on: fc.boolean() }) },
);

/** Ids made by each side (nanoid here, a counter there) are named in the order they first appear. */
function namer() {
  const names = new Map<string, string>();
  return (id: string | undefined) => (id === undefined ? id : (names.get(id) ?? (names.set(id, `#${names.size}`), `#${names.size - 1}`)));
}

/** A result as both sides can be compared on: ids named, lists of uuids sorted where order is not promised. */
function comparable(r: StorageResult, name: (id: string | undefined) => string | undefined) {
  const c = r.config;
  return {
    ok: r.ok,
    created: r.created ?? false,
    config: c && { ...c, analyticsId: name(c.analyticsId), applied: c.applied?.length ?? 0 },
    entries: r.entries?.map((e) => e.uuid),
    more: r.more,
    notBefore: r.notBefore,
    dropped: r.dropped?.map((e) => e.uuid).sort(),
    flying: r.flying?.slice().sort(),
    refused: r.refused?.map((e) => e.uuid).sort(),
    othersFlying: r.othersFlying,
    journaled: r.journaled ?? false,
  };
}

let wall = 0;
const who = (page: number) => ({ ...ENDPOINT, sessionId: PAGES[page]!, wall: () => wall });
const entry = (n: number, page: number, distinctId: string, cut: number): OutboxEntry => ({ uuid: uuid(n), ...ENDPOINT, kind: 'Append', name: 'settings-opened', props: {}, at: wall, queuedAt: wall, distinctId, sessionId: PAGES[page]!, cut, bytes: 100 + n });

/** A disk that refuses every put (QuotaExceededError), as Chromium's full storage does; deletes still work. */
const realPut = IDBObjectStore.prototype.put;
function full(on: boolean) {
  IDBObjectStore.prototype.put = on
    ? function () {
        throw new DOMException('the disk is full', 'QuotaExceededError');
      }
    : realPut;
}

beforeEach(async () => {
  full(false);
  await resetStorage();
});

async function run(ops: Op[]): Promise<void> {
  await resetStorage();
  wall = 1_800_000_000_000;
  let n = 0;
  const memory = new ContractStore(() => `m${n++}`, () => wall);
  const nameReal = namer();
  const nameMemory = namer();
  // The id and cut each side last reported: what a page that read storage would stamp entries with.
  let older = 0;
  let real = { id: '', cut: 0 };
  let mem = { id: '', cut: 0 };
  try {
    for (const [i, x] of ops.entries()) {
      const step = `step ${i}: ${JSON.stringify(x)}`;
      wall += 1; // each step its own millisecond: two cuts are never made at once (their order would be a tie)
      if (x.t === 'clock') wall += x.ms;
      else if (x.t === 'full') {
        full(x.on);
        memory.full = x.on;
      } else if (x.t === 'older') {
        const uuids = x.uuids.map((u) => 100 + older++ * 10 + (u % 10)); // an older build's events: of its own (a uuid is never written twice)
        const real0 = uuids.map((u) => entry(u, 0, real.id, real.cut));
        await db.transaction([LEGACY_OUTBOX], 'readwrite', (tx) => realPut.call(tx.objectStore(LEGACY_OUTBOX), { uuid: real0.map((e) => e.uuid), entries: real0 }, `${real0[0]!.uuid} older`)); // its disk is not ours to fill
        for (const e of uuids.map((u) => entry(u, 0, mem.id, mem.cut))) memory.legacy.set(e.uuid, e);
      } else if (x.t === 'journal') {
        const change: ConfigChange[] = x.cut ? [{ choice: 'disabled', choiceTime: 'j', cutAt: wall }] : [];
        journalLeaving(db, PAGES[x.page]!, x.uuids.map((u) => entry(u, x.page, real.id, real.cut)), change.map((c) => ({ id: `${PAGES[x.page]}-${i}`, change: c })));
        memory.journal(PAGES[x.page]!, x.uuids.map((u) => entry(u, x.page, mem.id, mem.cut)));
        for (const [id] of [...memory.journalChanges]) if (id.startsWith(`${PAGES[x.page]}-`)) memory.journalChanges.delete(id);
        for (const c of change) memory.journalChange(`${PAGES[x.page]}-${i}`, c);
      } else {
        const [opReal, opMem] = opsOf(x, real, mem);
        const a = await runStorageOp(db, who(x.page), opReal);
        const b = memory.run(opMem, who(x.page));
        if (a.ok && a.config) real = { id: a.config.analyticsId, cut: a.config.cut ?? 0 };
        if (b.ok && b.config) mem = { id: b.config.analyticsId, cut: b.config.cut ?? 0 };
        expect(comparable(a, nameReal), step).toEqual(comparable(b, nameMemory));
      }
    }
  } finally {
    full(false);
  }
}

/** The op as each side is given it: entries stamped with what that side last said of the id and cut (or stale on purpose). */
function opsOf(x: Op, real: { id: string; cut: number }, mem: { id: string; cut: number }): [StorageOp, StorageOp] {
  if (x.t === 'op' && x.op.op === 'change' && x.op.change.cutAt !== undefined) {
    const op: StorageOp = { op: 'change', change: { ...x.op.change, cutAt: wall } }; // a cut is dated when it is made
    return [op, op];
  }
  if (x.t === 'op') return [x.op, x.op];
  if (x.t === 'remove') {
    const op = (): StorageOp => ({ op: 'remove', uuids: x.uuids.map(uuid), unmark: x.unmark, ...(x.wait === undefined ? {} : { notBefore: wall + x.wait }) });
    return [op(), op()];
  }
  const add = (s: { id: string; cut: number }): StorageOp => ({ op: 'add', entries: x.t === 'add' ? x.uuids.map((u) => entry(u, x.page, x.stale === 1 ? 'someone-else' : s.id, s.cut - (x.stale === 2 ? 1 : 0))) : [] });
  return [add(real), add(mem)];
}

test(`the store keeps the contract: ${RUNS} random sequences of operations from two pages, IndexedDB and the model's storage compared (seed ${SEED})`, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), (ops) => run(ops)),
    { numRuns: RUNS, seed: SEED },
  );
}, 300_000);
