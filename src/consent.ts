// What the user chose, kept in step with storage and with every other tab, and the facts the
// consent gate (3-consent-gate.ts) weighs, read fresh each time it is asked. The gate itself is
// the pure decide(); this file only gathers what it decides on, and says when the answer changed.
import { decide, type ConsentFacts, type ConsentState } from './3-consent-gate.js';
import type { ResolvedOptions } from './options.js';
import { readSignals } from './signals.js';
import { configStore, forgetLegacy, newAnalyticsId, type Metadata, type OutboxEntry, type Storage, type StoredConfig } from './store.js';
import type { Change, TabMessage } from './tabs.js';

export interface Identity {
  analyticsId: string;
  sessionId: string;
  /** The page load that made the id, when this browser made it (first-run grace). */
  firstSessionId?: string;
}

export interface ConsentHooks {
  /** The gate's answer changed (or may have: an opt-out is applied again to be sure). */
  changed(state: ConsentState): void;
  /** The id changed (clear()): everything recorded under the old one must be forgotten. */
  cleared(): void;
  /** A change emptied the stored outbox: these entries never left. */
  emptied(entries: OutboxEntry[], reason: string): void;
  /** Tells the other tabs. */
  announce(message: TabMessage): void;
}

export interface Consent {
  readonly ready: Promise<void>;
  /** The gate's answer, now. */
  state(): ConsentState;
  identity(): Identity;
  metadata(): Metadata;
  config(): StoredConfig;
  /** The stored config could not be read or written: we no longer know what the user chose. */
  unreadable(): boolean;
  setEnabled(enabled: boolean): Promise<void>;
  clear(): Promise<void>;
  setMetadata(clean: Metadata): Promise<void>;
  /** Another tab changed the stored config. */
  heard(message: TabMessage): void;
  subscribe(listener: (state: ConsentState) => void): () => void;
  close(): void;
}

export function createConsent(opts: ResolvedOptions, db: Storage, sessionId: string, hooks: ConsentHooks): Consent {
  const store = configStore(db, sessionId);
  let stored: StoredConfig = { analyticsId: '', choice: 'unset', metadata: {} };
  let choice: ConsentFacts['stored'] = 'loading';
  /** The stored config is being read again (another tab cleared the id, or the page came back from the back/forward cache). */
  let rereading = 0;
  let closed = false;
  /** Hears every change of the gate's answer (the facade fans it out to the host's listeners). */
  const listeners = new Set<(s: ConsentState) => void>();

  /** Everything the gate weighs, read now. */
  const facts = (): ConsentFacts => {
    const signals = readSignals();
    return {
      stored: rereading > 0 && choice !== 'unreadable' && choice !== 'disabled' ? 'loading' : choice,
      devBuild: opts.devBuild,
      force: opts.force,
      automation: signals.automation,
      privacySignal: opts.respectPrivacySignals && signals.privacySignal,
      embedderForbids: opts.embedderPolicy === 'off' || signals.embedderForbids,
    };
  };
  const gate = () => decide(facts());
  let last = gate();

  /** Re-decides after any change of facts; tells the outbox and subscribers. */
  const refresh = () => {
    const next = gate();
    const changed = next.enabled !== last.enabled || next.reason !== last.reason;
    last = next;
    hooks.changed(next);
    if (!changed) return;
    for (const listener of listeners) listener(next);
  };

  const unreadable = () => choice === 'unreadable';

  /** Another tab opted out while our first read was in flight: that read may predate it. */
  let optOutWhileLoading = false;
  const ready: Promise<void> = store
    .load()
    .then(
      (config) => {
        stored = config;
        choice = optOutWhileLoading ? 'disabled' : config.choice;
      },
      () => {
        choice = 'unreadable'; // fail closed: we cannot know what the user chose
        stored = { ...stored, analyticsId: newAnalyticsId() };
      },
    )
    .then(refresh);

  /** Takes a config read from (or written to) storage as the truth, and applies it. */
  const adopt = (config: StoredConfig) => {
    const idChanged = stored.analyticsId !== config.analyticsId;
    stored = config;
    choice = config.choice;
    if (idChanged) hooks.cleared(); // another tab cleared it: what we hold was recorded under the old one
    refresh();
  };

  /** Storage failed after start: we no longer know what is stored, so send nothing. */
  const failClosed = () => {
    choice = 'unreadable';
    refresh();
  };

  /**
   * Counts local changes. A storage result is applied only if no local change began after it
   * was asked for: IndexedDB answers in order, but our in-memory copy runs ahead of it.
   */
  let changes = 0;

  /**
   * Writes a change, then tells the other tabs. The in-memory copy changes first, so the change
   * applies here at once. `change` must be pure (it runs on memory and in the transaction).
   * With `empty`, the stored outbox is emptied in the same transaction.
   */
  const persist = async (kind: Change, change: (c: StoredConfig) => StoredConfig, empty?: string) => {
    const mine = ++changes;
    stored = change(stored);
    if (unreadable()) return;
    try {
      const result = await store.change(change, empty !== undefined);
      if (empty !== undefined && result.dropped.length) hooks.emptied(result.dropped, empty);
      if (mine === changes && !unreadable()) adopt(result.config); // it also carries what other tabs wrote before us
      hooks.announce({ change: kind, choice: result.config.choice });
    } catch {
      failClosed(); // an opt-out that cannot be stored must not be undone by a later re-read
    }
  };

  /** Reads the stored config again and applies it, unless a newer local change wins. */
  const reread = () => {
    const asked = changes;
    rereading++;
    void ready
      .then(() => store.load())
      .then(
        (config) => {
          if (!closed && asked === changes && !unreadable()) adopt(config);
        },
        failClosed,
      )
      .finally(() => {
        rereading--;
        refresh();
      });
  };

  // Back from the back/forward cache: other tabs may have changed the stored choice while this
  // page was frozen, and their messages are lost. Hold delivery until storage is read again.
  const onPageShow = (e: Event) => {
    if ((e as PageTransitionEvent).persisted && !closed) {
      reread();
      refresh(); // 'loading' until the read is done
    }
  };
  globalThis.addEventListener?.('pageshow', onPageShow);

  const setEnabled = async (enabled: boolean) => {
    await ready;
    const next = enabled === true ? 'enabled' : 'disabled'; // when unsure, off
    const choiceTime = new Date().toISOString();
    if (!unreadable()) choice = next;
    refresh(); // an opt-out discards pending events now, before the write
    const change = (c: StoredConfig): StoredConfig => ({ ...c, choice: next, choiceTime });
    // Storage failed earlier: still try to store an opt-out (always safe), so the next page
    // load honours it; this page stays off whatever the answer.
    if (unreadable() && next === 'disabled') await store.change(change, true).catch(() => undefined);
    await persist('choice', change, next === 'disabled' ? 'user-opted-out' : undefined);
  };

  return {
    ready,
    state: gate,
    identity: () => ({ analyticsId: stored.analyticsId, sessionId, ...(stored.firstSessionId ? { firstSessionId: stored.firstSessionId } : {}) }),
    metadata: () => stored.metadata,
    config: () => stored,
    unreadable,
    setEnabled,
    async clear() {
      await ready;
      const analyticsId = newAnalyticsId(); // once: the same id in memory and in storage
      hooks.cleared();
      forgetLegacy();
      await persist('clear', (c) => ({ ...c, analyticsId, metadata: {} }), 'cleared');
    },
    async setMetadata(clean) {
      await ready;
      await persist('metadata', (c) => ({ ...c, metadata: { ...c.metadata, ...clean } }));
    },
    heard({ change, choice: announced }) {
      if (closed || unreadable()) return;
      if (announced === 'disabled') {
        changes++; // an older write of ours, landing later, must not turn this back on
        if (choice === 'loading') optOutWhileLoading = true;
        else choice = 'disabled';
        refresh();
      }
      if (change === 'clear') hooks.cleared(); // until we have read the new id, nothing may leave under the old one
      reread();
      refresh(); // 'loading' until the read is done
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    close() {
      closed = true;
      listeners.clear();
      globalThis.removeEventListener?.('pageshow', onPageShow);
    },
  };
}
