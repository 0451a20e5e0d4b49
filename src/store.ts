// Persistent config in IndexedDB, in a database of our own (never posthog-js's storage).
// One record, changed only inside one readwrite transaction (idb-keyval's `update`), so two
// tabs starting at once agree on a single anonymous id.
import { createStore, update, type UseStore } from 'idb-keyval';
import { nanoid } from 'nanoid';
import { unwrapNative } from './catalog';
import { isRecord } from './plain';

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
}

export interface ConfigStore {
  /** Reads the config, creating (or migrating) it on first start. Rejects if storage fails. */
  load(): Promise<StoredConfig>;
  /** Applies `change` atomically and returns the stored result. Rejects if storage fails. */
  change(change: (config: StoredConfig) => StoredConfig): Promise<StoredConfig>;
}

export const DB_NAME = 'rerun-analytics';
export const STORE_NAME = 'config';
const KEY = 'config';
/** The old web build's localStorage key: its id is adopted so existing users keep it. */
export const LEGACY_KEY = 'rerun_config';
/** IndexedDB can hang (a blocked upgrade, a wedged profile); past this we treat it as unreadable. */
const TIMEOUT_MS = 3000;

export function openConfigStore(): ConfigStore {
  let db: UseStore | undefined;
  const run = (change: (config: StoredConfig) => StoredConfig): Promise<StoredConfig> => {
    let result: StoredConfig | undefined;
    const work = (async () => {
      db ??= createStore(DB_NAME, STORE_NAME); // throws where IndexedDB does not exist
      await update<unknown>(KEY, (old) => (result = change(normalize(old) ?? firstConfig())), db);
      return result as StoredConfig;
    })().catch((err: unknown) => {
      db = undefined; // a failed open stays failed in idb-keyval: open afresh next time
      throw err;
    });
    return withTimeout(work, TIMEOUT_MS);
  };
  return { load: () => run((c) => c), change: run };
}

/** A fresh id, for first starts and for clear(). */
export function newAnalyticsId(): string {
  return nanoid();
}

/** Accepts what we stored before; repairs what it can (a lost id is remade, the choice kept). */
function normalize(value: unknown): StoredConfig | undefined {
  if (!isRecord(value)) return undefined;
  const choice = value.choice === 'enabled' || value.choice === 'disabled' ? value.choice : 'unset';
  return {
    analyticsId: typeof value.analyticsId === 'string' && value.analyticsId ? value.analyticsId : newAnalyticsId(),
    choice,
    ...(typeof value.choiceTime === 'string' ? { choiceTime: value.choiceTime } : {}),
    metadata: plainMetadata(value.metadata),
  };
}

/** First start: adopt the old web build's id and metadata when present, else a new id. */
function firstConfig(): StoredConfig {
  const legacy = readLegacy();
  return { analyticsId: legacy?.analyticsId ?? newAnalyticsId(), choice: 'unset', metadata: legacy?.metadata ?? {} };
}

function readLegacy(): { analyticsId: string; metadata: Metadata } | undefined {
  try {
    const parsed: unknown = JSON.parse(globalThis.localStorage?.getItem(LEGACY_KEY) ?? 'null');
    if (!isRecord(parsed) || typeof parsed.analytics_id !== 'string' || !parsed.analytics_id) return undefined;
    return { analyticsId: parsed.analytics_id, metadata: plainMetadata(parsed.metadata) };
  } catch {
    return undefined; // unreadable or sandboxed localStorage: nothing to adopt
  }
}

/** Forgets the old build's copy of the id too, so clear() really forgets it. */
export function forgetLegacy(): void {
  try {
    globalThis.localStorage?.removeItem(LEGACY_KEY);
  } catch {
    // sandboxed localStorage: there is nothing we could have adopted either
  }
}

/** Metadata as plain values; the native `{"String": "x"}` shape is unwrapped; anything else is dropped. */
export function plainMetadata(value: unknown): Metadata {
  const out: Metadata = {};
  if (!isRecord(value)) return out;
  for (const [k, v] of Object.entries(value)) {
    const plain = unwrapNative(v)?.value ?? v;
    if (typeof plain === 'string' || typeof plain === 'boolean' || (typeof plain === 'number' && Number.isFinite(plain))) out[k] = plain;
  }
  return out;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`IndexedDB did not answer within ${ms} ms`)), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}
