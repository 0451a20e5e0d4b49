// How events end, in one place: each gets at most one terminal audit entry in a tab ('sent',
// 'dropped', or 'unconfirmed' when a request carrying it was aborted after it may have arrived),
// and is then remembered as ended, so nothing judges, sends or audits it again here.
import { wireName } from '../5-allow-list.js';
import type { OutboxEntry } from './contract.js';
import type { Announce, Held, Step } from './types.js';

type Ref = Pick<OutboxEntry, 'uuid' | 'kind' | 'name'>;

/** Ended events remembered, at most (twice what the outbox holds, and a request more). */
const ENDED_KEPT = 2200;

/** Ended here: forgotten as waiting; `stored` ones are still to be removed from storage. */
function end(c: Step, uuid: string, stored: boolean): void {
  const { outbox } = c.st;
  outbox.known.delete(uuid);
  outbox.attempts.delete(uuid);
  outbox.ended.set(uuid, !stored);
  if (outbox.ended.size <= ENDED_KEPT) return;
  for (const [u, removed] of outbox.ended) if (removed && outbox.ended.size > ENDED_KEPT) outbox.ended.delete(u);
}

/** Dropped: it never left (or the endpoint refused it). `stored`: it is in storage, to be removed. */
export function dropRef(c: Step, e: Ref, reason: string, stored: boolean): void {
  if (c.st.outbox.ended.has(e.uuid)) return;
  end(c, e.uuid, stored);
  c.fx.push({ type: 'audit', entry: { name: wireName(e), outcome: 'dropped', reason, uuid: e.uuid } });
}

/** Held events (recorded before the stored choice was read) end here, each dropped with `reason`: never stored. */
export function dropHeld(c: Step, held: Held[], reason: string): void {
  for (const h of held) dropRef(c, { uuid: h.uuid, kind: h.event.kind, name: h.event.name }, reason, false);
}

/** Delivered: a request carrying it was answered 2xx (not a redirect). */
export function sent(c: Step, e: OutboxEntry, properties: Record<string, unknown>, notes: (string | undefined)[], stored: boolean): void {
  if (c.st.outbox.ended.has(e.uuid)) return;
  const attempts = c.st.outbox.attempts.get(e.uuid) ?? 1;
  end(c, e.uuid, stored);
  const reason = notes.filter(Boolean).join('; ');
  c.fx.push({ type: 'audit', entry: { name: wireName(e), outcome: 'sent', properties, uuid: e.uuid, attempts, ...(reason ? { reason } : {}) } });
}

/**
 * The request under way is stopped; its answer still comes (its bytes may still land). With
 * `reason`, what it carried ends here as unconfirmed; without (the page is off for now), it waits.
 */
export function abortFlight(c: Step, reason?: string): void {
  const f = c.st.flight;
  if (!f) return;
  if (!f.aborted) c.fx.push({ type: 'abort', id: f.id });
  f.aborted = true;
  if (reason === undefined) return;
  for (const e of f.entries) unconfirmed(c, e, `${reason}: its request was aborted in flight; it may have reached the endpoint`);
}

/** Ended, but it may have reached the endpoint: what is known, never the opposite. Gone from storage (or to be removed). */
export function unconfirmed(c: Step, e: Ref, reason: string): void {
  if (c.st.outbox.ended.has(e.uuid)) return;
  end(c, e.uuid, true);
  c.fx.push({ type: 'audit', entry: { name: wireName(e), outcome: 'unconfirmed', reason, uuid: e.uuid } });
}

/**
 * An opt-out or clear (this tab's, another's, or the site's data wiped): what this tab holds ends,
 * with `reason` — everything but what was stamped after it (`after`: under the cut it made, or a
 * clear's new id), unless recorded before this tab read storage (early: told apart by the clock alone).
 */
export function endAll(c: Step, reason: string, after: Pick<Announce, 'cut' | 'analyticsId'> = {}): void {
  const { st } = c;
  const later = (e: OutboxEntry) => (after.cut !== undefined && (e.cut ?? 0) >= after.cut) || (after.analyticsId !== undefined && e.distinctId === after.analyticsId);
  const before = (e: OutboxEntry) => e.early === true || !later(e);
  if (st.flight?.entries.some(before)) abortFlight(c, reason);
  dropHeld(c, st.held.splice(0), reason);
  for (const e of st.outbox.unwritten.filter(before)) dropRef(c, e, reason, false);
  st.outbox.unwritten = st.outbox.unwritten.filter((e) => !before(e));
  for (const e of [...st.outbox.known.values()]) if (before(e)) dropRef(c, e, reason, true);
}
