// The storage contract (src/core/contract.ts), implemented in memory from its text: the model's
// storage, and the reference the real one (src/store.ts on IndexedDB) is compared with in
// test/browser/contract.test.ts. Written from the contract's words, not from store.ts.
import {
  ahead,
  applyChange,
  applyJournaled,
  MARK_MS,
  NOT_BEFORE_MAX_MS,
  OUTBOX_LIMITS,
  over,
  refuses,
  type ConfigChange,
  type OutboxEntry,
  type StorageOp,
  type StorageResult,
  type StoredConfig,
} from '../../src/core/contract';

/** Who runs the op: a tab (its page load) of one endpoint. */
export interface Caller {
  sessionId: string;
  projectKey: string;
  apiHost: string;
}

type Taken = Pick<StorageResult, 'dropped' | 'refused'>;
const both = (a: Taken, b: Taken): Taken => ({ dropped: [...(a.dropped ?? []), ...(b.dropped ?? [])], refused: [...(a.refused ?? []), ...(b.refused ?? [])] });

const byUuid = (a: OutboxEntry, b: OutboxEntry) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0);

export class ContractStore {
  config?: StoredConfig;
  /** `events`, the outbox. */
  outbox = new Map<string, OutboxEntry>();
  /** An older build's outbox (versions 2 and 3). */
  legacy = new Map<string, OutboxEntry>();
  marks = new Map<string, { uuids: string[]; until: number }>();
  notBefore = new Map<string, { until: number; by: string }>();
  /** localStorage: what closing pages had not written, per page; changes IndexedDB refused or the facade made. */
  journalEvents = new Map<string, OutboxEntry[]>();
  journalChanges = new Map<string, ConfigChange>();
  /** A full disk: every transaction that puts fails; one that only reads or deletes works. */
  full = false;

  constructor(
    private readonly newId: () => string,
    private readonly wall: () => number,
  ) {}

  /** One op, one transaction: all of it or (ok: false) none of it. */
  run(op: StorageOp, who: Caller): StorageResult {
    const before = this.snapshot();
    try {
      return this.op(op, who);
    } catch (err) {
      this.restore(before);
      if (op.op === 'change' && op.change.cutAt !== undefined) return this.keepChange(op.change, op.id, who);
      if (op.op === 'read' && this.config) return { ok: true, config: this.configOf(who).config, created: false, othersFlying: this.flying(who.sessionId).size > 0 };
      return { ok: false, error: String(err) };
    }
  }

  /** The journal's events: one synchronous write, replacing what this page kept before (none: forgotten). */
  journal(sessionId: string, entries: OutboxEntry[]): void {
    if (entries.length) this.journalEvents.set(sessionId, entries.map((e) => ({ ...e })));
    else this.journalEvents.delete(sessionId);
  }

  /** The journal's changes (the facade's opt-out without the stages). */
  journalChange(id: string, change: ConfigChange): void {
    this.journalChanges.set(id, change);
  }

  private op(op: StorageOp, who: Caller): StorageResult {
    const { config, created } = this.configOf(who);
    if (op.op === 'read') return { ok: true, config, created, ...this.takeJournaled(config), othersFlying: this.flying(who.sessionId).size > 0 };
    if (op.op === 'change') return this.change(config, created, op.change, op.id, who);
    if (op.op === 'add') return { ok: true, config, created, ...this.add(config, op.entries) };
    if (op.op === 'list') return { ok: true, config, created, ...this.list(config, op, who) };
    if (op.op === 'mark') {
      this.put(() => this.marks.set(who.sessionId, { uuids: op.uuids, until: this.wall() + MARK_MS }));
      return { ok: true, config, created };
    }
    if (op.uuids.length) this.put(() => op.uuids.forEach((u) => this.outbox.delete(u))); // records rewritten, the size counted: writes
    if (op.unmark) this.marks.delete(who.sessionId);
    const key = `${who.apiHost} ${who.projectKey}`;
    if (op.notBefore === undefined) this.notBefore.delete(key);
    else this.put(() => this.notBefore.set(key, { until: op.notBefore!, by: who.sessionId }));
    return { ok: true, config, created };
  }

  /** The config, read first: created if missing, journaled changes applied (and written, when the disk takes it). */
  private configOf(who: Caller): { config: StoredConfig; created: boolean } {
    let created = false;
    if (!this.config) {
      this.put(() => (this.config = { analyticsId: this.newId(), choice: 'unset', metadata: {}, firstSessionId: who.sessionId }));
      created = true;
    }
    let config = this.config!;
    const journaled = [...this.journalChanges].sort((a, b) => (a[1].cutAt ?? 0) - (b[1].cutAt ?? 0)); // oldest first
    for (const [id, change] of journaled) config = applyJournaled(config, id, change);
    if (config !== this.config && !this.full) {
      this.config = config;
      this.journalChanges.clear(); // IndexedDB took them
    }
    return { config, created };
  }

  /** With `id`, applied once: a copy journaled under it is not applied again. */
  private change(old: StoredConfig, created: boolean, change: ConfigChange, id: string | undefined, who: Caller): StorageResult {
    const config = id ? applyJournaled(old, id, change) : applyChange(old, change);
    this.put(() => (this.config = config));
    if (change.cutAt === undefined) return { ok: true, config, created, othersFlying: this.flying(who.sessionId).size > 0 };
    return { ok: true, config, created, ...this.empty(who) };
  }

  /** A change with a cut that IndexedDB refused: kept in the journal; the outbox emptied by deletes only (with no config yet: failed, the journal kept). */
  private keepChange(change: ConfigChange, id = this.newId(), who: Caller): StorageResult {
    const config = this.config && this.configOf(who).config; // what was journaled before, then this, the latest, over it
    this.journalChanges.set(id, change);
    if (!config) return { ok: false, error: 'no config yet: the first read that can write applies the journal' };
    return { ok: true, config: applyJournaled(config, id, change), created: false, journaled: true, ...this.empty(who) };
  }

  private empty(who: Caller): Pick<StorageResult, 'dropped' | 'flying' | 'othersFlying'> {
    const others = this.flying(who.sessionId);
    const dropped = [...this.outbox.values(), ...this.legacy.values()];
    this.outbox.clear();
    this.legacy.clear();
    return { dropped, flying: dropped.filter((e) => others.has(e.uuid)).map((e) => e.uuid), othersFlying: others.size > 0 };
  }

  private add(config: StoredConfig, entries: OutboxEntry[]): Taken {
    const refused = entries.filter((e) => refuses(config, e));
    const fresh = entries.filter((e) => !refused.includes(e) && !this.outbox.has(e.uuid));
    if (fresh.length) this.put(() => fresh.forEach((e) => this.outbox.set(e.uuid, e)));
    return { dropped: this.evict(), refused };
  }

  /** Past the bounds, the oldest that no tab has in flight go. */
  private evict(): OutboxEntry[] {
    const flying = this.flying();
    const size = { count: this.outbox.size, bytes: [...this.outbox.values()].reduce((n, e) => n + e.bytes, 0) };
    const evicted: OutboxEntry[] = [];
    for (const e of [...this.outbox.values()].sort(byUuid)) {
      if (!over(size)) break;
      if (flying.has(e.uuid)) continue;
      this.outbox.delete(e.uuid);
      size.count--;
      size.bytes -= e.bytes;
      evicted.push(e);
    }
    return evicted;
  }

  private list(config: StoredConfig, { limit, mark }: { limit: number; mark: boolean }, who: Caller): Pick<StorageResult, 'entries' | 'more' | 'notBefore' | 'dropped' | 'refused'> {
    const taken = both(this.takeJournaled(config), this.takeLegacy(config));
    const mine = [...this.outbox.values()].filter((e) => e.projectKey === who.projectKey && e.apiHost === who.apiHost).sort(byUuid);
    const entries = mine.slice(0, limit);
    for (const [sid, m] of this.marks) if (!(m.until > this.wall())) this.marks.delete(sid);
    if (mark && entries.length) this.put(() => this.marks.set(who.sessionId, { uuids: entries.map((e) => e.uuid), until: this.wall() + MARK_MS }));
    const nb = this.notBefore.get(`${who.apiHost} ${who.projectKey}`);
    const others = nb && nb.by !== who.sessionId && ahead(nb.until, this.wall(), NOT_BEFORE_MAX_MS);
    return { ...taken, entries, more: mine.length > limit, ...(others ? { notBefore: nb.until } : {}) };
  }

  /** Every page's journaled events, into the outbox by the add rule; the journal forgets them. */
  private takeJournaled(config: StoredConfig): Taken {
    if (!this.journalEvents.size) return {};
    const taken = this.add(config, [...this.journalEvents.values()].flat());
    this.journalEvents.clear();
    return taken;
  }

  /** An older build's outbox, but what its tabs have in flight, into ours by the add rule. */
  private takeLegacy(config: StoredConfig): Taken {
    const flying = this.flying();
    const entries = [...this.legacy.values()].filter((e) => !flying.has(e.uuid));
    if (!entries.length) return {};
    entries.forEach((e) => this.legacy.delete(e.uuid));
    return this.add(config, entries);
  }

  /** What tabs have in flight (but `except`): marks that have not expired (one dated too far ahead still counts). */
  private flying(except?: string): Set<string> {
    const uuids = new Set<string>();
    for (const [sid, m] of this.marks) if (sid !== except && m.until > this.wall()) m.uuids.forEach((u) => uuids.add(u)); // even dated too far ahead: it may fly
    return uuids;
  }

  private put(write: () => void): void {
    if (this.full) throw new Error('QuotaExceededError: the disk is full');
    write();
  }

  private snapshot() {
    return { config: this.config, outbox: new Map(this.outbox), legacy: new Map(this.legacy), marks: new Map(this.marks), notBefore: new Map(this.notBefore), journalEvents: new Map(this.journalEvents), journalChanges: new Map(this.journalChanges) };
  }

  private restore(s: ReturnType<ContractStore['snapshot']>): void {
    Object.assign(this, s);
  }
}

export { OUTBOX_LIMITS };
