// The native SDK's JSON, as the viewer's WASM hands it to recordNative(): read into the plain
// shape the validate stage checks (2-validate.ts). Bad input becomes a reason, never a throw.
import type { Recorded } from './2-validate.js';
import { unwrapNative, type EventKind, type PropType } from './catalog.js';
import { isRecord } from './plain.js';

const KINDS: readonly EventKind[] = ['Append', 'Identify', 'SetPersonProperties'];
/** Per-session values the native SDK may include; ours (per page load) are used instead. */
const SESSION_KEYS = ['event_id', 'session_id'];
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;
/** Bigger than any event the viewer records; refuse before parsing, so junk cannot stall the page. */
export const MAX_NATIVE_JSON = 256 * 1024;

/**
 * recordNative(): the native SDK's serde JSON of one event, as a string or already parsed:
 * `{"time_utc": "…Z", "kind": "Append", "name": "…", "props": {"k": {"String": "v"}}}`.
 * Returns the reason when the input is not of that shape.
 */
export function fromNative(input: unknown): Recorded | string {
  let event = input;
  if (typeof input === 'string') {
    if (input.length > MAX_NATIVE_JSON) return `longer than ${MAX_NATIVE_JSON} characters`;
    try {
      event = JSON.parse(input);
    } catch {
      return 'not valid JSON';
    }
  }
  if (!isRecord(event)) return 'not a JSON object';
  const { time_utc, kind, name, props = {} } = event;
  if (typeof name !== 'string') return '"name" is not a string';
  if (!KINDS.includes(kind as EventKind)) return `"kind" must be one of ${KINDS.join(', ')}`;
  if (typeof time_utc !== 'string' || !RFC3339.test(time_utc) || Number.isNaN(Date.parse(time_utc))) return '"time_utc" is not an RFC 3339 time';
  if (!isRecord(props)) return '"props" is not an object';

  // Without a prototype: a key named "__proto__" stays a key (and is then removed as undeclared).
  const plain: Record<string, unknown> = Object.create(null);
  const types: Record<string, PropType> = Object.create(null);
  for (const [key, value] of Object.entries(props)) {
    if (SESSION_KEYS.includes(key)) continue;
    const native = unwrapNative(value);
    if (!native) return `property "${key.slice(0, 100)}" is not a native value like {"String": "…"}`;
    plain[key] = native.value;
    types[key] = native.type;
  }
  return { name, kind: kind as EventKind, props: plain, types, time: Date.parse(time_utc), native: true };
}
