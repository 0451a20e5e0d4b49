// Stage 5 — the allow-list. posthog-js adds ~45 properties of its own (the page URL, host,
// referrer, user agent, screen size, campaign parameters, `$set_once` person data, …). A
// deny-list would leak whatever it adds next version; so the outgoing event is *rebuilt* from
// our own data, taking from posthog-js only the technical keys named below. posthog-js calls
// this as `before_send`, synchronously inside capture(), after it has added everything.
import type { Outgoing } from './4-outbox';

/** The wire event: nothing but these four top-level keys leaves (no `$set_once`, no `$set`). */
export interface WireEvent {
  uuid: string;
  event: string;
  properties: Record<string, unknown>;
  timestamp?: Date | string;
}

/**
 * Keys copied from what posthog-js produced, each needed by PostHog's ingestion and none
 * about the person or the page:
 * - `token`: the project key; the server routes the event by it.
 * - `$lib`, `$lib_version`: which SDK sent it ("web", its version), to debug ingestion.
 * - `$insert_id`: random per event, lets the server drop duplicates.
 */
const FROM_POSTHOG = ['token', '$lib', '$lib_version', '$insert_id'] as const;

/**
 * Keys we set ourselves on every event, beside the catalog's declared properties:
 * - `distinct_id`: the anonymous id (ours, not posthog-js's), read at hand-over.
 * - `session_id`: random per page load, as native sends it.
 * - `event_id`: the native per-session counter, on Append events only.
 * - `$geoip_disable`: tells PostHog not to derive a location from the IP address.
 * - `$set`: person properties, only for Identify / SetPersonProperties, only declared keys.
 */
export const FIXED_PROPERTIES = [...FROM_POSTHOG, 'distinct_id', 'session_id', 'event_id', '$geoip_disable', '$set'] as const;

export interface Identity {
  distinctId: string;
  sessionId: string;
}

/** What the wire event's name is for each kind (native mapping). */
export function wireName(e: Outgoing): string {
  return e.kind === 'Identify' ? '$identify' : e.kind === 'SetPersonProperties' ? '$set' : e.name;
}

/**
 * Builds the event that leaves: our declared properties (already validated against the
 * catalog) plus the fixed keys. Person properties go in `properties.$set`, never top level.
 * `personExtra` is Identify's opt-in metadata, which the user chose to share.
 */
export function allowListed(fromPosthog: WireEvent, e: Outgoing, who: Identity, personExtra: Record<string, unknown>): WireEvent {
  // Declared properties first, fixed keys after: a declared name can never shadow a fixed one.
  const properties: Record<string, unknown> = e.kind === 'Append' ? { ...e.props } : {};
  if (e.kind !== 'Append') properties.$set = e.kind === 'Identify' ? { ...personExtra, ...e.props } : { ...e.props };
  for (const key of FROM_POSTHOG) {
    const v = fromPosthog.properties[key];
    if (typeof v === 'string') properties[key] = v;
  }
  properties.distinct_id = who.distinctId;
  properties.session_id = who.sessionId;
  properties.$geoip_disable = true;
  if (e.eventId !== undefined) properties.event_id = e.eventId;
  return { uuid: fromPosthog.uuid, event: wireName(e), properties, ...(fromPosthog.timestamp ? { timestamp: fromPosthog.timestamp } : {}) };
}
