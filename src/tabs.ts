// Every open tab of the origin at once, on one BroadcastChannel:
// - after a change of the stored config, the tab that made it says so; the others re-read
//   IndexedDB (the source of truth) and apply it. A message alone never turns anything on: any
//   script of the origin can post on the channel; it can only turn a tab off early (the safe way).
// - after writing events to the shared outbox, a tab tells the one that delivers them (decide/delivery.ts).
//   A forged message can only make that tab look at the outbox sooner.

export type Change = 'choice' | 'clear' | 'metadata';

export interface TabMessage {
  change: Change;
  /** The stored choice after the change, so an opt-out applies before the storage read. */
  choice: 'enabled' | 'disabled' | 'unset';
  /** The change ended what was recorded before it (an opt-out, even one replaced at once by an opt-in): others hold until they read it. */
  emptied?: true;
  /** What was stamped after it (the cut it made; a clear's new id) is not ended on hearing. */
  cut?: number;
  analyticsId?: string;
}

export interface Tabs {
  announce(message: TabMessage): void;
  /** "I wrote events to the outbox" (`now`: "and the host asked to flush"). */
  wrote(now: boolean): void;
  close(): void;
}

export const CHANNEL_NAME = 'rerun-analytics';

export function connectTabs(on: { changed(message: TabMessage): void; wrote(now: boolean): void }): Tabs {
  let channel: BroadcastChannel | undefined;
  try {
    channel = new BroadcastChannel(CHANNEL_NAME);
    channel.onmessage = (e: MessageEvent<unknown>) => {
      const m = e.data as (Partial<TabMessage> & { outbox?: unknown }) | null;
      if (m?.outbox === 'wrote' || m?.outbox === 'flush') on.wrote(m.outbox === 'flush');
      else if (m && (m.change === 'choice' || m.change === 'clear' || m.change === 'metadata')) {
        const cut = Number.isSafeInteger(m.cut) && (m.cut as number) >= 0 ? { cut: m.cut } : {};
        const id = typeof m.analyticsId === 'string' && m.analyticsId.length <= 64 ? { analyticsId: m.analyticsId } : {};
        on.changed({ change: m.change, choice: m.choice === 'disabled' ? 'disabled' : m.choice === 'enabled' ? 'enabled' : 'unset', ...(m.emptied === true ? { emptied: true } : {}), ...cut, ...id });
      }
    };
  } catch {
    // no BroadcastChannel (very old browsers): other tabs catch up on their next start
  }
  const post = (message: unknown) => {
    try {
      channel?.postMessage(message);
    } catch {
      // a closed channel: nothing to tell
    }
  };
  return {
    announce: post,
    wrote: (now) => post({ outbox: now ? 'flush' : 'wrote' }),
    close: () => channel?.close(),
  };
}
