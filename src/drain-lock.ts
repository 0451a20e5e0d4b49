// One tab at a time delivers the shared outbox, so no two tabs send the same event.
// With the Web Locks API the tab holding the lock leads until it resigns or its page dies (the
// browser releases a crashed tab's lock); the next tab waiting takes over at once. Without it,
// a lease in IndexedDB, renewed while held: a tab that stops renewing (crashed, frozen) loses it
// after LEASE_MS, and another takes over.
import { promisifyRequest } from 'idb-keyval';
import { CONFIG, type Storage } from './store.js';

export interface Leadership {
  /** True while this tab leads (asked before every attempt). */
  leading(): boolean;
  /** Resolves once it is known whether this tab leads now (or another does). */
  readonly decided: Promise<void>;
  /** Stops leading (or waiting to); the next tab takes over. */
  resign(): void;
}

const LEASE_MS = 6000;

export function lead(db: Storage, name: string, holder: string, onLead: () => void): Leadership {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks; // secure contexts only
  return typeof locks?.request === 'function' ? withLocks(locks, name, onLead) : withLease(db, name, holder, onLead);
}

function withLocks(locks: LockManager, name: string, onLead: () => void): Leadership {
  let leading = false;
  let resigned = false;
  let release: (() => void) | undefined;
  let settle!: () => void;
  const decided = new Promise<void>((resolve) => (settle = resolve));
  const waiting = new AbortController();
  const hold = () => {
    if (resigned) return undefined;
    leading = true;
    onLead();
    return new Promise<void>((resolve) => (release = resolve));
  };
  // Free now? Then lead at once; else wait in line (the browser hands the lock over when its holder dies).
  locks
    .request(name, { ifAvailable: true }, (lock) => {
      settle();
      if (lock) return hold();
      void locks.request(name, { signal: waiting.signal }, hold).catch(() => undefined); // aborted: we resigned
      return undefined;
    })
    .catch(() => settle());
  return {
    leading: () => leading,
    decided,
    resign() {
      resigned = true;
      leading = false;
      waiting.abort();
      release?.();
    },
  };
}

function withLease(db: Storage, name: string, holder: string, onLead: () => void): Leadership {
  const key = `drain-lease:${name}`;
  const readLease = (tx: IDBTransaction) => promisifyRequest(tx.objectStore(CONFIG).get(key)) as Promise<{ holder?: string; until?: number } | undefined>;
  let leading = false;
  /** Until when our lease holds: a tab whose timers were throttled past it no longer leads. */
  let until = 0;
  let resigned = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const renew = async () => {
    const now = Date.now();
    const mine = await db
      .transaction([CONFIG], 'readwrite', async (tx) => {
        const lease = await readLease(tx);
        const free = !lease || lease.holder === holder || !(Number(lease.until) > now);
        if (free && !resigned) tx.objectStore(CONFIG).put({ holder, until: now + LEASE_MS }, key);
        return free && !resigned;
      })
      .catch(() => false); // storage failed: not leading (send nothing we cannot account for)
    const was = leading;
    leading = mine;
    if (mine) until = now + LEASE_MS - 1000; // a second's margin for clocks and slow transactions
    if (mine && !was) onLead();
    if (!resigned) timer = setTimeout(() => void renew(), LEASE_MS / 3);
  };
  const decided = renew();
  return {
    leading: () => leading && Date.now() < until,
    decided,
    resign() {
      resigned = true;
      clearTimeout(timer);
      if (leading) {
        leading = false;
        void db
          .transaction([CONFIG], 'readwrite', async (tx) => {
            const lease = await readLease(tx);
            if (lease?.holder === holder) tx.objectStore(CONFIG).delete(key);
          })
          .catch(() => undefined);
      }
    },
  };
}
