// Every open tab of the origin at once: after a change is stored, the tab that made it says
// so on a BroadcastChannel; the others re-read IndexedDB (the source of truth) and apply it.
// A message alone never turns anything on: any script of the origin can post on the channel.
// It can only turn a tab off early, which is the safe direction.

export type Change = 'choice' | 'clear' | 'metadata';

export interface TabMessage {
  change: Change;
  /** The stored choice after the change, so an opt-out applies before the storage read. */
  choice: 'enabled' | 'disabled' | 'unset';
}

export interface Tabs {
  announce(message: TabMessage): void;
  close(): void;
}

export const CHANNEL_NAME = 'rerun-analytics';

export function connectTabs(onMessage: (message: TabMessage) => void): Tabs {
  let channel: BroadcastChannel | undefined;
  try {
    channel = new BroadcastChannel(CHANNEL_NAME);
    channel.onmessage = (e: MessageEvent<unknown>) => {
      const m = e.data as Partial<TabMessage> | null;
      if (m && (m.change === 'choice' || m.change === 'clear' || m.change === 'metadata')) {
        onMessage({ change: m.change, choice: m.choice === 'disabled' ? 'disabled' : m.choice === 'enabled' ? 'enabled' : 'unset' });
      }
    };
  } catch {
    // no BroadcastChannel (very old browsers): other tabs catch up on their next start
  }
  return {
    announce(message) {
      try {
        channel?.postMessage(message);
      } catch {
        // a closed channel: nothing to tell
      }
    },
    close: () => channel?.close(),
  };
}
