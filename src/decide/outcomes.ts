// How events end, in one place: each gets exactly one terminal audit entry ('sent', 'dropped',
// or 'unconfirmed' when a request carrying it was aborted after it may have arrived).
import { wireName } from '../5-allow-list.js';
import type { OutboxEntry } from './config.js';
import type { Effect, State } from './types.js';

type Fx = Effect[];

/** Dropped: it never left (or the endpoint refused it). Forgotten here, and removed from storage. */
export function drop(st: State, fx: Fx, e: Pick<OutboxEntry, 'uuid' | 'kind' | 'name'>, reason: string, stored = true): void {
  st.known.delete(e.uuid);
  st.attempts.delete(e.uuid);
  if (stored) st.removals.add(e.uuid);
  fx.push({ type: 'audit', entry: { name: wireName(e), outcome: 'dropped', reason, uuid: e.uuid } });
}

/** The request in flight is stopped. With `reason`, what it carried is audited as unconfirmed (it may have arrived). */
export function abortFlight(st: State, fx: Fx, reason?: string): void {
  const f = st.flight;
  if (!f) return;
  st.flight = undefined;
  st.unmark = true;
  st.stopping = f.id;
  fx.push({ type: 'abort', id: f.id });
  if (reason === undefined) return;
  for (const e of f.entries) {
    st.known.delete(e.uuid);
    st.attempts.delete(e.uuid);
    st.discarded.add(e.uuid);
    st.removals.add(e.uuid); // ended here: whoever lists it next must not end it again (nor send it)
    fx.push({ type: 'audit', entry: { name: wireName(e), outcome: 'unconfirmed', reason: `${reason}: its request was aborted in flight; it may have reached the endpoint`, uuid: e.uuid } });
  }
}

/** What this tab holds that is in no storage (held, staged, or all of it in memory mode): dropped. */
export function dropUnwritten(st: State, fx: Fx, reason: string): void {
  for (const h of st.held) drop(st, fx, { uuid: h.uuid, kind: h.event.kind, name: h.event.name }, reason, false);
  st.held = [];
  for (const e of st.staged) drop(st, fx, e, reason, false), st.discarded.add(e.uuid);
  st.staged = [];
  if (st.mode === 'memory') for (const e of [...st.known.values()]) drop(st, fx, e, reason), st.discarded.add(e.uuid);
}

/** This tab's own opt-out or clear: everything it holds ends now, with `reason`; the emptying's result skips these. */
export function discardAll(st: State, fx: Fx, reason: string): void {
  abortFlight(st, fx, reason);
  dropUnwritten(st, fx, reason);
  for (const e of [...st.known.values()]) st.discarded.add(e.uuid), drop(st, fx, e, reason);
}
