// The user's "no" does not wait for code: when the stages' chunk is not there (still loading, or
// a deploy in between made it 404), setEnabled(false) stores the opt-out from the startup facade
// itself, in the shape store.ts reads, empties the outbox in the same transaction, and tells the
// other tabs. Raw IndexedDB, no dependency: this rides in the host's startup bundle.

/** Stores an opt-out and announces it; resolves when done, or when it cannot be done. Never rejects. */
export function storeOptOut(): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      try {
        const channel = new BroadcastChannel('rerun-analytics');
        channel.postMessage({ change: 'choice', choice: 'disabled' }); // tabs.ts: an opt-out applies at once
        channel.close();
      } catch {
        // no BroadcastChannel: other tabs read it at their next start
      }
      resolve();
    };
    try {
      const open = indexedDB.open('rerun-analytics'); // whatever version is there (a newer build's too)
      open.onupgradeneeded = () => ['config', 'outbox'].forEach((s) => open.result.objectStoreNames.contains(s) || open.result.createObjectStore(s));
      open.onerror = open.onblocked = done;
      open.onsuccess = () => {
        const db = open.result;
        try {
          const tx = db.transaction(['config', 'outbox'], 'readwrite');
          const config = tx.objectStore('config');
          const read = config.get('config');
          read.onsuccess = () => {
            config.put({ ...(read.result as object), choice: 'disabled', choiceTime: new Date().toISOString() }, 'config');
            config.put({ count: 0, bytes: 0 }, 'outbox-size');
            tx.objectStore('outbox').clear();
          };
          tx.oncomplete = tx.onerror = tx.onabort = () => (db.close(), done());
        } catch {
          db.close();
          done();
        }
      };
    } catch {
      done(); // no IndexedDB: still told to the other tabs
    }
  });
}
