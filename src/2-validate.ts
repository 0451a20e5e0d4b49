// Stage 2 — validate against the catalog. Bad input becomes a reason, never an exception:
// an undeclared event or a wrongly typed value drops the event; an undeclared property is
// removed and the removal is noted in the audit.
import { MODULE_OWNED } from './reserved.js';
import { parseSpec, type Catalog, type EventKind, type PropType, type Value } from './catalog.js';

export type { Value };

/** What the host handed us, in one plain shape (record() directly; recordNative() via native.ts). */
export interface Recorded {
  name: unknown;
  /** Set when the caller said which kind it is (native JSON does); otherwise the catalog's. */
  kind?: EventKind;
  props: unknown;
  /** Explicit value types from the native `{ "Float": 1.0 }` shape. */
  types?: Record<string, PropType>;
  /** The event's time, ms since the epoch. */
  time: number;
  /** From the native SDK (recordNative): it hashes user ids before serialising. */
  native?: boolean;
}

export interface Valid {
  kind: EventKind;
  name: string;
  props: Record<string, Value>;
  /** ms since the epoch. */
  time: number;
  /** The properties' size as JSON (UTF-8 bytes), for the outbox's byte bound. */
  bytes: number;
  /** Shown in the audit entry when the event is sent (e.g. removed properties). */
  note?: string;
}

export type Validation = { ok: true; event: Valid } | { ok: false; reason: string };

/** A longer string is refused (not truncated), so the audit stays exact. */
export const MAX_STRING_LENGTH = 32_768;
/** An event's properties as JSON, at most (UTF-8 bytes): no single event can swamp a request. */
export const MAX_EVENT_BYTES = 64 * 1024;

/** Values for the module-owned properties (see MODULE_OWNED in reserved.ts). */
export type OwnedProps = Partial<Record<(typeof MODULE_OWNED)[number], Value>>;

export function validate(rec: Recorded, catalog: Catalog, owned: OwnedProps): Validation {
  const { name } = rec;
  if (typeof name !== 'string') return fail('event name is not a string');
  const spec = Object.hasOwn(catalog, name) ? catalog[name] : undefined;
  if (!spec) return fail(`unknown event "${name.slice(0, 100)}" (not in the catalog)`);
  if (rec.kind && rec.kind !== spec.kind) return fail(`"${name}" is a ${spec.kind} event, not ${rec.kind}`);
  const given = rec.props ?? {};
  if (typeof given !== 'object' || Array.isArray(given)) return fail('properties are not an object');

  const { types, required } = compiled(spec);
  const props: Record<string, Value> = {};
  const removed: string[] = [];
  for (const key of Object.keys(given)) {
    const value = (given as Record<string, unknown>)[key];
    if (value === null || value === undefined) continue; // "leave it out", as native's Option
    if ((MODULE_OWNED as readonly string[]).includes(key)) continue; // ours, filled in below
    const type = types.get(key);
    if (!type) {
      removed.push(key);
      continue;
    }
    const problem = typeProblem(value, type, rec.types?.[key]);
    if (problem) return fail(`property "${key}" ${problem}`);
    props[key] = value as Value;
  }
  for (const key of MODULE_OWNED) {
    const value = owned[key];
    if (types.has(key) && value !== undefined) props[key] = value;
  }
  const final = spec.derive ? spec.derive.apply(props, rec.native === true) : props;
  for (const key of required) if (!(key in final)) return fail(`required property "${key}" is missing`);
  const bytes = utf8Length(JSON.stringify(final));
  if (bytes > MAX_EVENT_BYTES) return fail(`properties are larger than ${MAX_EVENT_BYTES} bytes as JSON`);
  const note = removed.length ? `removed undeclared properties: ${removed.map((k) => k.slice(0, 100)).join(', ')}` : undefined;
  return { ok: true, event: { kind: spec.kind, name, props: final, time: rec.time, bytes, ...(note ? { note } : {}) } };
}

function typeProblem(value: unknown, type: PropType, explicit: PropType | undefined): string | undefined {
  if (explicit && explicit !== type) return `is ${explicit}, declared ${type}`;
  switch (type) {
    case 'string':
      if (typeof value !== 'string') return `must be a string, got ${typeof value}`;
      if (value.length > MAX_STRING_LENGTH) return `is longer than ${MAX_STRING_LENGTH} characters`;
      return undefined;
    case 'bool':
      return typeof value === 'boolean' ? undefined : `must be a boolean, got ${typeof value}`;
    case 'integer':
      // Native Integer is i64; beyond 2^53 a JS number cannot hold it exactly, so refuse.
      return Number.isSafeInteger(value) ? undefined : 'must be a safe integer';
    case 'float':
      // NaN and Infinity are not JSON; native serde would fail on them too.
      return typeof value === 'number' && Number.isFinite(value) ? undefined : 'must be a finite number';
  }
}

/** Each event spec's properties, parsed once: a type per name, and the names that are required. */
const specs = new WeakMap<object, { types: Map<string, PropType>; required: string[] }>();
function compiled(spec: Catalog[string]) {
  let c = specs.get(spec);
  if (!c) {
    const parsed = Object.entries(spec.props).map(([key, declared]) => [key, parseSpec(declared)] as const);
    specs.set(spec, (c = { types: new Map(parsed.map(([k, p]) => [k, p.type])), required: parsed.filter(([, p]) => !p.optional).map(([k]) => k) }));
  }
  return c;
}

/**
 * UTF-8 bytes of a JSON text, counted without encoding it. JSON.stringify escapes lone
 * surrogates, so a surrogate here is half of a pair: 4 bytes for the two.
 */
function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}

function fail(reason: string): Validation {
  return { ok: false, reason };
}
