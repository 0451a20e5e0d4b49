// One tab at a time delivers the shared outbox, so no two tabs send the same event.
// With the Web Locks API the tab holding the lock leads until it resigns or its page dies (the
// browser releases a crashed tab's lock); the next tab waiting takes over at once. Without it,
// a lease in IndexedDB, renewed while held: a tab that stops renewing (crashed, frozen) loses it
// after LEASE_MS, and another takes over. A lease dated further ahead than LEASE_MS was written
// by a clock that has since stepped back: it is not trusted. The holder's own deadline is kept on
// the monotonic clock.
import { promisifyRequest } from 'idb-keyval';
import { CONFIG, type Storage } from './store.js';

export interface Leadership {
  /** Stops leading (or waiting to); the next tab takes over. */
  resign(): void;
}

const LEASE_MS = 6000;

/** `led(true)` when this tab starts leading; `led(false)` when it is known that another leads, or this one lost the lead. */
export function lead(db: Storage, name: string, holder: string, led: (leading: boolean) => void): Leadership {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks; // secure contexts only
  const lease = () => withLease(db, name, holder, led);
  return typeof locks?.request === 'function' ? withLocks(locks, name, led, lease) : lease();
}

/** Web Locks that do not answer this soon (refused, throwing, never calling back) are not used: the lease is. */
const LOCK_ANSWER_MS = 3000;

function withLocks(locks: LockManager, name: string, led: (leading: boolean) => void, fallback: () => Leadership): Leadership {
  let resigned = false;
  let answered = false;
  let release: (() => void) | undefined;
  let instead: Leadership | undefined;
  const waiting = new AbortController();
  const hold = () => {
    if (resigned) return undefined;
    led(true);
    return new Promise<void>((resolve) => (release = resolve));
  };
  // Locks refused (an opaque origin: SecurityError), throwing, or silent: lead by the lease instead.
  const useLease = () => void (!answered && !resigned && ((answered = true), (instead = fallback())));
  const timer = setTimeout(useLease, LOCK_ANSWER_MS);
  // Free now? Then lead at once; else wait in line (the browser hands the lock over when its holder dies).
  try {
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (answered) return undefined; // too late: the lease decides
        answered = true;
        clearTimeout(timer);
        if (lock) return hold();
        led(false); // another tab leads: we wait in line
        void locks.request(name, { signal: waiting.signal }, hold).catch(() => undefined); // aborted: we resigned
        return undefined;
      })
      .catch(() => (clearTimeout(timer), useLease()));
  } catch {
    clearTimeout(timer);
    useLease();
  }
  return {
    resign() {
      resigned = true;
      clearTimeout(timer);
      waiting.abort();
      release?.();
      instead?.resign();
    },
  };
}

function withLease(db: Storage, name: string, holder: string, led: (leading: boolean) => void): Leadership {
  const key = `drain-lease:${name}`;
  const readLease = (tx: IDBTransaction) => promisifyRequest(tx.objectStore(CONFIG).get(key)) as Promise<{ holder?: string; until?: number } | undefined>;
  let leading = false;
  let first = true;
  let resigned = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const renew = async () => {
    const now = Date.now();
    const mine = await db
      .transaction([CONFIG], 'readwrite', async (tx) => {
        const lease = await readLease(tx);
        const left = Number(lease?.until) - now;
        const free = !lease || lease.holder === holder || !(left > 0 && left <= LEASE_MS); // expired, or from the future
        if (free && !resigned) tx.objectStore(CONFIG).put({ holder, until: now + LEASE_MS }, key);
        return free && !resigned;
      })
      .catch(() => false); // storage failed: not leading (send nothing we cannot account for)
    if (resigned) return;
    if (mine !== leading || first) led((leading = mine));
    first = false;
    timer = setTimeout(() => void renew(), LEASE_MS / 3);
  };
  void renew();
  return {
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
