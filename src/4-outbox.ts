// Stage 4 — the outbox: where validated events wait for the next flush.
//
// Waiting is what makes opt-out immediate: an event sits here (not inside posthog-js, whose
// queue our opt-out cannot reach) until the flush, and the flush asks the consent gate at the
// very moment of hand-over, after every await. It is bounded: a full outbox drops new events
// with a reason rather than growing or blocking the host.
import type { ConsentState } from './3-consent-gate';
import type { Valid } from './2-validate';

export interface Outgoing extends Valid {
  /** A UUID per event: posthog-js sends it as the event's uuid; the allow-list admits only these. */
  uuid: string;
  /** The native per-session counter, on Append events only. */
  eventId?: number;
}

export interface Transport {
  /** Hands events to the network, synchronously. */
  send(events: Outgoing[]): void;
  /** Forgets requests that failed and wait for a retry: after an opt-out nothing may leave. */
  cancel(): void;
  /** cancel(), then releases the transport. */
  close(): void;
}

export interface OutboxDeps {
  /** The consent gate (3-consent-gate.ts), asked at push and again at hand-over. */
  consent(): ConsentState;
  /** Loads the transport; resolves the error if it cannot be had. Called only when consent is on. */
  loadTransport(): Promise<Transport | Error>;
  dropped(event: Outgoing, reason: string): void;
  intervalMs: number;
}

/** Events waiting at once, at most; past it new events are dropped ('outbox full'). */
export const OUTBOX_CAPACITY = 500;

export interface Outbox {
  push(event: Outgoing): void;
  /** Hands over what waits, if the gate says yes; resolves when the transport has it. */
  flush(): Promise<void>;
  /** Drops everything waiting, each with `reason`, and the transport's pending retries. */
  discard(reason: string): void;
  /** Arms the flush timer if anything waits (after consent turns on). */
  schedule(): void;
  close(): void;
}

export function createOutbox(deps: OutboxDeps): Outbox {
  const queue: Outgoing[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let transport: Transport | undefined;
  let failure: Error | undefined;
  /** One load, shared by concurrent flushes: posthog-js is started once per instance. */
  let loading: Promise<Transport | Error> | undefined;

  /** Drops everything waiting here, and the transport's pending retries: nothing more leaves. */
  const discard = (reason: string) => {
    for (const e of queue.splice(0)) deps.dropped(e, reason);
    transport?.cancel();
  };

  /** The hand-over. Synchronous from the gate's answer to send(): nothing can change between. */
  const handOver = (t: Transport | undefined) => {
    const state = deps.consent();
    if (!state.enabled) {
      if (state.reason !== 'loading') discard(state.reason);
      return;
    }
    if (!t) return discard(`transport unavailable (${failure?.message ?? 'not loaded'})`);
    if (queue.length) t.send(queue.splice(0));
  };

  const flush = async () => {
    clearTimeout(timer);
    timer = undefined;
    if (!queue.length) return;
    if (!deps.consent().enabled) return handOver(undefined); // no transport fetch while off
    if (!transport) {
      const loaded = await (loading ??= deps.loadTransport());
      if (loaded instanceof Error) failure = loaded;
      else transport = loaded;
    }
    handOver(transport);
  };

  const schedule = () => {
    if (timer === undefined && queue.length && deps.consent().enabled) {
      timer = setTimeout(() => void flush().catch(() => undefined), deps.intervalMs);
    }
  };

  // The page is going away: hand over now if the transport is already here (posthog-js then
  // uses a keepalive request). Without a loaded transport, nothing can leave synchronously.
  const onHide = (e: Event) => {
    try {
      if (transport && (e.type === 'pagehide' || document.visibilityState === 'hidden')) handOver(transport);
    } catch {
      // the page is going away; never throw into its handlers
    }
  };
  globalThis.addEventListener?.('visibilitychange', onHide);
  globalThis.addEventListener?.('pagehide', onHide);

  return {
    push(event) {
      const state = deps.consent();
      if (!state.enabled && state.reason !== 'loading') return deps.dropped(event, state.reason);
      if (queue.length >= OUTBOX_CAPACITY) return deps.dropped(event, 'outbox full');
      queue.push(event);
      schedule();
    },
    flush,
    discard,
    schedule,
    close() {
      clearTimeout(timer);
      transport?.close();
      globalThis.removeEventListener?.('visibilitychange', onHide);
      globalThis.removeEventListener?.('pagehide', onHide);
    },
  };
}
