// The storage contract: what is kept where, in which shape, and what each storage operation the
// core asks for promises. One text for three readers: the shell's storage (src/store.ts, on
// IndexedDB and localStorage), the startup facade's opt-out (src/opt-out.ts), and the model
// (test/model/storage.ts, which implements it from this text alone). A differential test in real
// Chromium (test/browser/contract.test.ts) runs random operations on both and compares.
//
// The layout, version 4:
//   IndexedDB "rerun-analytics"
//     config   'config'        the anonymous id, the user's choice, metadata, the cut (StoredConfig)
//              'events-size'   the outbox's count and bytes (recounted if missing or impossible)
//              'flight:<sid>'  a tab's mark: what it listed to send, until when (MARK_MS)
//              'not-before <apiHost> <key>'  no request to that endpoint before this wall time
//              'drain-lease:…' the delivering tab's lease, where Web Locks are missing
//     events   the outbox: a record per write, keyed by its oldest uuid, indexed by every uuid
//     outbox   versions 2 and 3's outbox: still created, so that a tab of an older build, open
//              during a deploy, keeps working on it; a list takes what it holds into `events`
//   localStorage (the journal: written in one synchronous call, so it survives a closing page)
//     'rerun-analytics:events:<sid>'  what a tab had not written when its page went away
//     'rerun-analytics:change:<id>'   a cut IndexedDB refused (a full disk), that a closing page
//                                     had not stored, or that the startup facade made without
//                                     the stages; every op applies these first, oldest first, once
//
// Migration: a new layout gets a store and a lock name of its own, and takes the older store's
// entries in; it never rewrites what an older build reads. An older tab therefore cannot break
// newer data (its eviction, opt-out and lock only touch its own store and name), and the cut
// and the id, which every build shares, keep consent whole across builds.

export * from './names.js';

/** A tab's mark lasts this long at most (a crashed tab's mark expires). */
export const MARK_MS = 45_000;
/**
 * A request starts only this soon after the op that marks it was asked for, so that the mark
 * (dated when written, later still) outlives the request's start (1 s) and its longest wait (the
 * shell's 30 s timeout). An answer later than that (a frozen or busy tab) is not sent on.
 */
export const MARK_SEND_MS = 10_000;
/** A stored not-before further ahead than this was written by a clock since set back: not trusted. */
export const NOT_BEFORE_MAX_MS = 300_000;
/** Bounds of the outbox (all tabs together); past them the oldest go, each with a reason. */
export const OUTBOX_LIMITS = { count: 1000, bytes: 1024 * 1024 };
/** An event not delivered within this is dropped: a week, as an outage may last a weekend. */
export const OUTBOX_TTL_MS = 7 * 24 * 3600_000;
/** Metadata keys, at most (metadata rides on every $identify). */
export const MAX_METADATA_KEYS = 64;
/** The journaled changes a config remembers having applied (each is applied once). */
const APPLIED_KEPT = 16;

export type MetadataValue = boolean | number | string;
export type Metadata = Record<string, MetadataValue>;

export interface StoredConfig {
  /** The anonymous id. Any non-empty string is kept: hand-made and migrated ids must work. */
  analyticsId: string;
  /** The user's explicit choice; 'unset' until the user flips the toggle. */
  choice: 'enabled' | 'disabled' | 'unset';
  /** When the choice was made (ISO 8601), shown in config() so a user can check it. */
  choiceTime?: string;
  /** Opt-in metadata, sent with Identify as the native SDK does (bounded before it is stored). */
  metadata: Metadata;
  /** The page load that made this id (first-run grace); absent for ids adopted or made before. */
  firstSessionId?: string;
  /**
   * The cut: how many opt-outs and clears have ended what came before them; `cutAt`: the latest
   * time one was asked for (wall clock; never moved back: a change stored after another tab's,
   * though asked for before it, still ends what that one ended).
   */
  cut?: number;
  cutAt?: number;
  /** Journaled changes already applied (their ids): a change is applied once, however often it is read. */
  applied?: string[];
}

/** One event waiting in the outbox: everything needed to send it from any tab, on any later visit. */
export interface OutboxEntry {
  /** UUID v7 (time-ordered): the outbox reads oldest first; the wire uuid (the server deduplicates on it). */
  uuid: string;
  projectKey: string;
  apiHost: string;
  kind: 'Append' | 'Identify' | 'SetPersonProperties';
  name: string;
  props: Record<string, MetadataValue>;
  /** The event's time (its wire timestamp), ms since the epoch. */
  at: number;
  /** When it was accepted (wall clock): the TTL counts from here. */
  queuedAt: number;
  /** The id, page load and cut it was accepted under: another id or a later cut never sends it. */
  distinctId: string;
  sessionId: string;
  cut?: number;
  eventId?: number;
  /** Shown in the audit when it is sent (e.g. properties the catalog removed). */
  note?: string;
  /**
   * Recorded before its page had read storage: told from what a cut ended by the clock alone, so
   * an opt-out or clear heard later ends it, whatever cut it was stamped under.
   */
  early?: true;
  /** Its size as JSON, for the byte bound. */
  bytes: number;
}

/** A change of the stored config. `cutAt` (an opt-out or a clear) ends everything recorded before it. */
export interface ConfigChange {
  choice?: 'enabled' | 'disabled';
  choiceTime?: string;
  /** clear(): this new id; metadata wiped. */
  analyticsId?: string;
  /** Merged into what is stored (bounded to MAX_METADATA_KEYS). */
  metadata?: Metadata;
  cutAt?: number;
}

/**
 * The operations, each one transaction over the config and the outbox, in which the config is
 * read first (created if missing: `created`; journaled changes applied). One at a time per tab.
 */
export type StorageOp =
  /**
   * The config. Takes the journaled events of every page into the outbox (by the add rule;
   * `refused`, `dropped`). If IndexedDB refuses to write (a full disk), the config as stored, with
   * the journaled changes over it; nothing taken in.
   */
  | { op: 'read' }
  /**
   * Applies `change` (applyChange). With `cutAt`, empties the outbox in the same transaction and
   * returns what it removed (`dropped`), and which of those other tabs had marked (`flying`: they
   * may be on their way to the endpoint). If IndexedDB refuses to write
   * (a full disk refuses every put), a change with `cutAt` is still kept: the outbox is emptied by
   * a transaction that only deletes, the change journaled, and `journaled` is set. With `id` (a
   * change with a cut: the id its page journals it under, should it close before it hears the
   * result), applied once (applyJournaled): a journaled copy is not applied again.
   */
  | { op: 'change'; change: ConfigChange; id?: string }
  /**
   * Stores entries under the add rule (`refuses`: `refused`), skipping what is stored already;
   * past OUTBOX_LIMITS evicts the oldest that no tab has in flight (`dropped`).
   */
  | { op: 'add'; entries: OutboxEntry[] }
  /**
   * The oldest `limit` entries for this endpoint; with `mark`, marked as this tab's in flight for
   * MARK_MS (so no tab evicts them, and an opt-out waits for them); `more` if others wait; the
   * endpoint's `notBefore`, if another tab stored it and it is trusted. Takes journaled events,
   * and an older build's outbox, in first; deletes marks that have expired (none pile up).
   */
  | { op: 'list'; limit: number; mark: boolean }
  /**
   * Marks `uuids` (what only this tab holds: its writes fail) as this tab's in flight for
   * MARK_MS, replacing its mark, so that an opt-out elsewhere waits for its request. A full disk
   * refuses it: when unsure, such a tab sends nothing.
   */
  | { op: 'mark'; uuids: string[] }
  /**
   * Removes `uuids` (those gone already are skipped; a full disk refuses it, as it rewrites
   * records); `unmark`: this tab's mark too; stores `notBefore` as this tab's (absent: clears it).
   */
  | { op: 'remove'; uuids: string[]; unmark: boolean; notBefore?: number };

export interface StorageResult {
  ok: boolean;
  error?: string;
  /** The config as read (and, for a change, as written) in the op's transaction. */
  config?: StoredConfig;
  /** The config was missing: a first start, or the site's data was cleared. */
  created?: boolean;
  /** list: the entries, oldest first; more wait beyond them. */
  entries?: OutboxEntry[];
  more?: boolean;
  /** list: no request to this endpoint before this wall time. */
  notBefore?: number;
  /** add, read, list: evicted past the bounds (never what a tab has marked); change with cutAt: emptied. */
  dropped?: OutboxEntry[];
  /** change with cutAt: the uuids of what it emptied that another tab had marked. */
  flying?: string[];
  /** add, read, list: what the add rule refused (the add's, or journaled or older entries taken in). */
  refused?: OutboxEntry[];
  /** read, change: another tab has a mark that has not expired (one dated too far ahead, by a clock since set back, counts: when unsure, it may fly). */
  othersFlying?: boolean;
  /** change: IndexedDB refused it; it is kept in the journal (see the op). */
  journaled?: boolean;
}

/** What a change makes of the config: the cut rule. Pure; run in memory and in the transaction. */
export function applyChange(c: StoredConfig, change: ConfigChange): StoredConfig {
  const next: StoredConfig = { ...c };
  if (change.choice) {
    next.choice = change.choice;
    next.choiceTime = change.choiceTime;
  }
  if (change.analyticsId) {
    next.analyticsId = change.analyticsId;
    next.metadata = {};
    delete next.firstSessionId;
  }
  if (change.metadata) next.metadata = firstKeys({ ...next.metadata, ...change.metadata }, MAX_METADATA_KEYS);
  if (change.cutAt !== undefined) {
    next.cut = (c.cut ?? 0) + 1;
    next.cutAt = Math.max(c.cutAt ?? change.cutAt, change.cutAt);
  }
  return next;
}

/** A journaled change, applied once: its id is remembered in the config. */
export function applyJournaled(c: StoredConfig, id: string, change: ConfigChange): StoredConfig {
  if (c.applied?.includes(id)) return c;
  return { ...applyChange(c, change), applied: [...(c.applied ?? []), id].slice(-APPLIED_KEPT) };
}

/** The add rule: an entry is refused while the stored choice is off, or if it was accepted under another id or cut (why, or undefined). */
export function refuses(c: StoredConfig, e: OutboxEntry): string | undefined {
  if (c.choice === 'disabled') return 'user-opted-out';
  if (e.distinctId !== c.analyticsId) return 'cleared';
  if ((e.cut ?? 0) !== (c.cut ?? 0)) return 'recorded before the last opt-out or clear';
  return undefined;
}

/** Waited longer than the TTL by the wall clock, or stamped more than a TTL ahead (a date from the future is not trusted for ever). */
export function expired(e: OutboxEntry, wall: number): boolean {
  return !(Math.abs(wall - e.queuedAt) <= OUTBOX_TTL_MS);
}

/** A stored deadline (a mark, a not-before) still ahead, and not further than `max`: a clock set back since it was written does not make it last. */
export function ahead(until: unknown, wall: number, max: number): boolean {
  const left = Number(until) - wall;
  return left > 0 && left <= max;
}

/** Over the outbox's bounds. */
export const over = (size: { count: number; bytes: number }) => size.count > OUTBOX_LIMITS.count || size.bytes > OUTBOX_LIMITS.bytes;

function firstKeys<T>(o: Record<string, T>, n: number): Record<string, T> {
  return Object.fromEntries(Object.entries(o).slice(0, n));
}
