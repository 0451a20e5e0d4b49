// Stage 5 — the allow-list: the one place that says what an outgoing event contains.
//
// posthog-js's capture() adds ~45 properties of its own (the page URL, host, referrer, user
// agent, screen size, campaign parameters, `$set_once` person data, …). We never call it: the
// event that leaves is built here, from our own data, and handed to posthog-js's request layer
// as it is (6-transport.ts). A key that is not written below cannot leave.
import type { OutboxEntry } from './store.js';

/** The wire event: nothing but these four top-level keys leaves (no `$set_once`, no top-level `$set`). */
export interface WireEvent {
  uuid: string;
  event: string;
  properties: Record<string, unknown>;
  timestamp: string;
}

/**
 * Keys we set on every event (FIXED_PROPERTIES in reserved.ts), beside the catalog's declared properties:
 * - `distinct_id`: the anonymous id the event was recorded under.
 * - `session_id`: random per page load, as native sends it.
 * - `event_id`: the native per-session counter, on Append events only.
 * - `$geoip_disable`: tells PostHog not to derive a location from the IP address.
 * - `$set`: person properties, only for Identify / SetPersonProperties, only declared keys.
 * Nothing the server does not need: the project key travels once per request (the batch's
 * `api_key`), and `app_env` already tells web from native (no `$lib`).
 */
export { FIXED_PROPERTIES } from './reserved.js';

/** What the wire event's name is for each kind (native mapping). */
export function wireName(e: { kind: OutboxEntry['kind']; name: string }): string {
  return e.kind === 'Identify' ? '$identify' : e.kind === 'SetPersonProperties' ? '$set' : e.name;
}

/**
 * Builds the event that leaves: our declared properties (validated against the catalog) plus
 * the fixed keys. Person properties go in `properties.$set`, never top level. `personExtra` is
 * Identify's opt-in metadata, which the user chose to share.
 */
export function allowListed(e: OutboxEntry, personExtra: Record<string, unknown>): WireEvent {
  // Declared properties first, fixed keys after: a declared name can never shadow a fixed one.
  const properties: Record<string, unknown> = e.kind === 'Append' ? { ...e.props } : {};
  if (e.kind !== 'Append') properties.$set = e.kind === 'Identify' ? { ...personExtra, ...e.props } : { ...e.props };
  properties.distinct_id = e.distinctId;
  properties.session_id = e.sessionId;
  if (e.eventId !== undefined) properties.event_id = e.eventId;
  properties.$geoip_disable = true;
  return { uuid: e.uuid, event: wireName(e), properties, timestamp: new Date(e.at).toISOString() };
}
