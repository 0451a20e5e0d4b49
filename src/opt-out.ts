// The user's "no" does not wait for code: when the stages' chunk is not there (still loading, a
// 404 after a deploy, a page whose embedder forbids analytics), setEnabled(false) is kept by the
// startup facade itself, as the storage contract says (core/contract.ts): a change with a cut in
// its journal — one synchronous localStorage write, which any tab's next storage op applies before
// anything else, once — and announced on the channel, so that every open tab ends at once what
// was recorded before it. No IndexedDB code here: it rides in the host's startup bundle.
import { CHANNEL, JOURNAL_CHANGE } from './core/names.js';

/** Journals and announces an opt-out; false if it could not be journaled (no localStorage). Never throws. */
export function storeOptOut(): boolean {
  const now = Date.now();
  let kept = false;
  try {
    const id = `${now}-${Math.random().toString(36).slice(2)}`;
    localStorage.setItem(JOURNAL_CHANGE + id, JSON.stringify({ choice: 'disabled', choiceTime: new Date(now).toISOString(), cutAt: now }));
    kept = true;
  } catch {
    // no localStorage (sandboxed): the stages store it when they come
  }
  try {
    const channel = new BroadcastChannel(CHANNEL);
    channel.postMessage({ change: 'choice', choice: 'disabled', emptied: true }); // tabs.ts: an opt-out that ends what came before
    channel.close();
  } catch {
    // no BroadcastChannel: other tabs read it at their next storage op
  }
  return kept;
}
