// The stored records' shapes and the pure rules about them: what a change does to the config,
// how metadata is bounded, when an outbox entry has expired. The shell (src/shell/storage.ts)
// applies them inside its transactions; the core (step.ts) applies them in memory.
import { unwrapNative } from '../catalog.js';
import { isRecord } from '../plain.js';
import type { ConfigChange } from './types.js';

export type MetadataValue = boolean | number | string;
export type Metadata = Record<string, MetadataValue>;

export interface StoredConfig {
  /** The anonymous id. Any non-empty string is kept: hand-made and migrated ids must work. */
  analyticsId: string;
  /** The user's explicit choice; 'unset' until the user flips the toggle. */
  choice: 'enabled' | 'disabled' | 'unset';
  /** When the choice was made (ISO 8601), shown in config() so a user can check it. */
  choiceTime?: string;
  /** Opt-in metadata, sent with Identify as the native SDK does. */
  metadata: Metadata;
  /** The page load that made this id (first-run grace); absent for ids adopted or made before. */
  firstSessionId?: string;
  /** How many opt-outs and clears have emptied the outbox; when the last was asked for (wall clock). */
  cut?: number;
  cutAt?: number;
}

/** One event waiting in the outbox: everything needed to send it from any tab, on any later visit. */
export interface OutboxEntry {
  /** UUID v7 (time-ordered): the IndexedDB key, so the outbox reads oldest first; the wire uuid. */
  uuid: string;
  /** Where it goes: the project key and host it was recorded for. */
  projectKey: string;
  apiHost: string;
  kind: 'Append' | 'Identify' | 'SetPersonProperties';
  name: string;
  props: Record<string, MetadataValue>;
  /** The event's time (its wire timestamp), ms since the epoch. */
  at: number;
  /** When the outbox took it, ms since the epoch (wall clock): the TTL counts from here. */
  queuedAt: number;
  /** The id and page load it was recorded under: a cleared id never leaves. */
  distinctId: string;
  sessionId: string;
  eventId?: number;
  /** Shown in the audit when it is sent (e.g. properties the catalog removed). */
  note?: string;
  /** Its size as JSON, for the outbox's byte bound. */
  bytes: number;
  /** The config's `cut` it was accepted under: after another opt-out or clear, it is refused. */
  cut?: number;
}

export interface OutboxSize {
  count: number;
  bytes: number;
}

/** Bounds of the outbox (all tabs together); past them the oldest events are dropped, with a reason. */
export const OUTBOX_LIMITS: OutboxSize = { count: 1000, bytes: 1024 * 1024 };
/** An event not delivered within this is dropped (and said so): a week, as an outage may last a weekend. */
export const OUTBOX_TTL_MS = 7 * 24 * 3600_000;
/** Metadata keys, at most; longer keys and strings are dropped (metadata rides on every $identify). */
export const MAX_METADATA_KEYS = 64;
const MAX_METADATA_LENGTH = 1024;

/** What a change makes of the stored config. Pure: it runs in memory and inside the transaction. */
export function applyChange(c: StoredConfig, change: ConfigChange): StoredConfig {
  const next: StoredConfig = { ...c };
  if (change.choice) (next.choice = change.choice), (next.choiceTime = change.choiceTime);
  if (change.analyticsId) (next.analyticsId = change.analyticsId), (next.metadata = {}), delete next.firstSessionId;
  if (change.metadata) next.metadata = plainMetadata({ ...next.metadata, ...change.metadata }); // bounded again after the merge
  if (change.cutAt !== undefined) (next.cut = (c.cut ?? 0) + 1), (next.cutAt = change.cutAt);
  return next;
}

/** Metadata as plain values; the native `{"String": "x"}` shape is unwrapped; anything else is dropped. */
export function plainMetadata(value: unknown, refused?: (what: string) => void): Metadata {
  if (!isRecord(value)) return void refused?.(`not an object of values (got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`})`), {};
  const kept: [string, MetadataValue][] = [];
  for (const [k, v] of Object.entries(value)) {
    if (kept.length >= MAX_METADATA_KEYS) return void refused?.(`more than ${MAX_METADATA_KEYS} keys: the rest not kept`), Object.fromEntries(kept);
    const plain = unwrapNative(v)?.value ?? v;
    const ok = typeof plain === 'string' ? plain.length <= MAX_METADATA_LENGTH : typeof plain === 'boolean' || (typeof plain === 'number' && Number.isFinite(plain));
    if (ok && k.length <= 200 && k !== '__proto__') kept.push([k, plain as MetadataValue]);
    else refused?.(`"${k.slice(0, 100)}" not kept: ${ok ? 'not a usable name' : `a value must be a string (≤ ${MAX_METADATA_LENGTH} characters), a finite number or a boolean`}`);
  }
  return Object.fromEntries(kept); // own keys only, even one named "__proto__"
}

/**
 * Expired: waited longer than the TTL by the wall clock — or stamped more than a TTL in the
 * future (a clock that was wrong then, or is now): a date from the future is not trusted for ever.
 */
export function expired(e: OutboxEntry, wall: number): boolean {
  const age = wall - e.queuedAt;
  return !(Math.abs(age) <= OUTBOX_TTL_MS);
}
