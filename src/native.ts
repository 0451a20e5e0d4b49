// The native SDK's JSON, as the viewer's WASM hands it to recordNative(), in either shape:
// - one event as re_analytics serialises it (serde): {"time_utc", "kind", "name", "props": {"k": {"String": "v"}}};
// - the web pipeline's PostHog batch (re_analytics' web/pipeline.rs, posthog.rs; also what shipped
//   viewers POST to tel.rerun.io, taken by guard.ts): {"api_key", "batch": [{"event", "distinct_id",
//   "properties", "timestamp", "$set"?}]}, pretty-printed or not.
// Read into the plain shape the validate stage checks (2-validate.ts). Bad input becomes a
// reason, never a throw. The batch's api_key, distinct_id, session_id and event_id are not
// kept: ours replace them (the allow-list writes them).
import type { Recorded } from './2-validate.js';
import { unwrapNative, type EventKind, type PropType } from './catalog.js';
import { isRecord } from './plain.js';

const KINDS: readonly EventKind[] = ['Append', 'Identify', 'SetPersonProperties'];
/** Per-session values the native SDK may include; ours (per page load) are used instead. */
const SESSION_KEYS = ['event_id', 'session_id'];
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;
/** Bigger than any event the viewer records; refuse before parsing, so junk cannot stall the page. */
export const MAX_NATIVE_JSON = 256 * 1024;

/** One event read from native JSON, or why it could not be (with its name, if it has one). */
export type NativeRead = Recorded | { name: string; reason: string };

/** Events in one pipeline batch, at most. */
const MAX_BATCH = 1000;

/** recordNative(): a string or an already parsed object, in either shape; one result per event. */
export function fromNative(input: unknown): NativeRead[] {
  let parsed = input;
  if (typeof input === 'string') {
    if (input.length > MAX_NATIVE_JSON) return [bad(input, `longer than ${MAX_NATIVE_JSON} characters`)];
    try {
      parsed = JSON.parse(input);
    } catch {
      return [bad(input, 'not valid JSON')];
    }
  }
  if (isRecord(parsed) && 'batch' in parsed) {
    const { batch } = parsed;
    if (!Array.isArray(batch)) return [{ name: '(pipeline batch)', reason: '"batch" is not an array' }];
    if (batch.length > MAX_BATCH) return [{ name: '(pipeline batch)', reason: `more than ${MAX_BATCH} events in one batch` }];
    return batch.map(fromPipeline);
  }
  return [fromSerde(parsed)];
}

function fromSerde(event: unknown): NativeRead {
  if (!isRecord(event)) return bad(event, 'not a JSON object');
  const { time_utc, kind, name, props = {} } = event;
  if (typeof name !== 'string') return bad(event, '"name" is not a string');
  if (!KINDS.includes(kind as EventKind)) return bad(event, `"kind" must be one of ${KINDS.join(', ')}`);
  const time = rfc3339(time_utc);
  if (time === undefined) return bad(event, '"time_utc" is not an RFC 3339 time');
  if (!isRecord(props)) return bad(event, '"props" is not an object');

  // Without a prototype: a key named "__proto__" stays a key (and is then removed as undeclared).
  const plain: Record<string, unknown> = Object.create(null);
  const types: Record<string, PropType> = Object.create(null);
  for (const [key, value] of Object.entries(props)) {
    if (SESSION_KEYS.includes(key)) continue;
    const native = unwrapNative(value);
    if (!native) return bad(event, `property "${key.slice(0, 100)}" is not a native value like {"String": "…"}`);
    plain[key] = native.value;
    types[key] = native.type;
  }
  return { name, kind: kind as EventKind, props: plain, types, time, native: true };
}

/**
 * One event of the pipeline's batch (posthog.rs): Append → `event` is its name and `properties`
 * its props (+ session_id, event_id); Identify → "$identify", person props in a top-level
 * `$set`; SetPersonProperties → "$set", person props in `properties.$set`. Values are plain
 * JSON (1.0 arrives as 1): the catalog's declared type decides.
 */
function fromPipeline(item: unknown): NativeRead {
  if (!isRecord(item)) return bad(item, 'a batch item is not a JSON object');
  const { event, timestamp, properties = {} } = item;
  if (typeof event !== 'string') return bad(item, '"event" is not a string');
  const time = rfc3339(timestamp);
  if (time === undefined) return bad(item, '"timestamp" is not an RFC 3339 time');
  if (!isRecord(properties)) return bad(item, '"properties" is not an object');
  let kind: EventKind = 'Append';
  let props: unknown = properties;
  if (event === '$identify') {
    kind = 'Identify';
    props = item.$set ?? {};
  } else if (event === '$set') {
    kind = 'SetPersonProperties';
    props = properties.$set;
  }
  if (!isRecord(props)) return bad(item, kind === 'Identify' ? '"$set" is not an object' : '"properties.$set" is not an object');
  const plain: Record<string, unknown> = Object.create(null);
  for (const [key, value] of Object.entries(props)) if (kind !== 'Append' || !SESSION_KEYS.includes(key)) plain[key] = value;
  return { name: event, kind, props: plain, time, native: true };
}

/** ms since the epoch, if `value` is an RFC 3339 time (0–9 fraction digits). */
function rfc3339(value: unknown): number | undefined {
  if (typeof value !== 'string' || !RFC3339.test(value)) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

/** The event's name for the audit, if native input has one at all. */
export const nativeName = (input: unknown): string => bad(input, '').name;

function bad(input: unknown, reason: string): { name: string; reason: string } {
  let name: unknown;
  try {
    const m = typeof input === 'string' ? /"(?:name|event)"\s*:\s*"([^"]{1,100})"/.exec(input) : undefined;
    name = m ? m[1] : isRecord(input) ? (input.name ?? input.event) : undefined;
  } catch {
    // a throwing getter: no name then
  }
  return { name: typeof name === 'string' ? name.slice(0, 100) : '(malformed)', reason };
}
