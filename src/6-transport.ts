// Stage 6 — the transport: posthog-js, fetched with a dynamic import() only once consent is on,
// so a user who opted out never even downloads it. We use the slim, no-external-scripts build:
// no autocapture, recorder, surveys or toolbar code, and it cannot load scripts from a CDN.
import type { Outgoing, Transport } from './4-outbox';
import { allowListed, type Identity, type WireEvent } from './5-allow-list';
import type { Audit } from './7-audit';
import { safeString } from './plain';

export interface TransportOptions {
  projectKey: string;
  apiHost: string;
  /** Read at hand-over, so clear() takes effect for the very next event. */
  identity(): Identity;
  /** Identify's person properties beyond the declared ones: the opt-in metadata. */
  metadata(): Record<string, unknown>;
  audit: Audit;
}

let instances = 0;

/** Loads and starts posthog-js. Rejects if the chunk cannot be fetched or init fails. */
export async function loadTransport(opts: TransportOptions): Promise<Transport> {
  const { posthog } = await import('posthog-js/dist/module.slim.no-external.js');
  // Events handed over and not yet captured or refused; the allow-list admits only these.
  const handed = new Map<string, { event: Outgoing; who: Identity }>();

  const name = `rerun-analytics-${++instances}`;
  const client = posthog.init(
    opts.projectKey,
    {
      api_host: opts.apiHost,
      // Identity is ours: posthog-js keeps nothing between page loads (no cookie, no storage).
      persistence: 'memory',
      disable_persistence: true,
      bootstrap: { distinctID: opts.identity().distinctId, isIdentifiedID: false },
      // Everything that would collect on its own, or talk to PostHog beyond capture, is off.
      autocapture: false,
      capture_pageview: false,
      capture_pageleave: false,
      rageclick: false,
      capture_heatmaps: false,
      capture_dead_clicks: false,
      capture_exceptions: false,
      capture_performance: false,
      disable_session_recording: true,
      disable_surveys: true,
      disable_product_tours: true,
      disable_conversations: true,
      disable_web_experiments: true,
      advanced_disable_flags: true,
      advanced_disable_toolbar_metrics: true,
      disable_external_dependency_loading: true,
      save_referrer: false,
      save_campaign_params: false,
      person_profiles: 'always',
      // Whether automation may send is our gate's decision (3-consent-gate.ts), not a silent
      // user-agent filter's: otherwise the audit would say "sent" for a dropped event.
      opt_out_useragent_filter: true,
      before_send: (cr) => {
        const mine = cr ? handed.get(cr.uuid) : undefined;
        if (!cr || !mine) {
          if (cr) opts.audit.add({ name: cr.event, outcome: 'dropped', reason: 'not recorded by the host (made by posthog-js)' });
          return null;
        }
        return allowListed(cr as WireEvent, mine.event, mine.who, opts.metadata()) as typeof cr;
      },
    },
    name,
  );
  if (!client) throw new Error('posthog-js did not initialise');

  /**
   * posthog-js retries a failed request (5xx, offline) for minutes, and beacons the retries out
   * at pagehide, whatever our consent says. It has no public way to cancel them, so we empty
   * its retry queue (a private field, pinned by test/browser/review.test.ts) when consent goes.
   */
  const cancel = () => {
    const retries = (client as unknown as { _retryQueue?: { _queue?: unknown[] } })._retryQueue;
    if (retries && Array.isArray(retries._queue)) retries._queue = [];
  };

  // Emitted after before_send with the object posthog-js serialises: the audit's 'sent' record.
  client.on('eventCaptured', (cr: WireEvent) => {
    const note = handed.get(cr.uuid)?.event.note;
    if (!handed.delete(cr.uuid)) return;
    opts.audit.add({ name: cr.event, outcome: 'sent', ...(note ? { reason: note } : {}), properties: structuredClone(cr.properties) });
  });

  return {
    send(events) {
      const who = opts.identity();
      for (const event of events) {
        handed.set(event.uuid, { event, who });
        let reason = 'refused by posthog-js';
        try {
          client.capture(event.name, {}, {
            uuid: event.uuid,
            timestamp: event.time,
            // Our outbox is the bound; posthog-js's limiter would drop silently and then send
            // a warning that names the page.
            skip_client_rate_limiting: true,
            // Straight to the network: a batch left in posthog-js's queue is out of reach of an opt-out.
            send_instantly: true,
          });
        } catch (err) {
          reason = `transport error: ${safeString(err).slice(0, 200)}`; // never into the host
        }
        // Still here: posthog-js did not send it (refused, or threw). Say so.
        if (handed.delete(event.uuid)) opts.audit.add({ name: event.name, outcome: 'dropped', reason });
      }
    },
    cancel,
    close() {
      cancel();
      handed.clear();
      try {
        void client.shutdown(); // its queues are empty now: nothing is beaconed
        delete (posthog as unknown as Record<string, unknown>)[name];
      } catch {
        // releasing is best effort
      }
    },
  };
}
