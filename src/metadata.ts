// Opt-in metadata as the host hands it (setMetadata), as the old web build left it, or as native
// JSON wraps it: bounded to plain values before it is stored or sent with $identify.
import { unwrapNative } from './catalog.js';
import { MAX_METADATA_KEYS, type Metadata, type MetadataValue } from './core/contract.js';
import { isRecord } from './plain.js';

const MAX_METADATA_LENGTH = 1024;

/** Metadata as plain values; the native `{"String": "x"}` shape is unwrapped; anything else is dropped (and `refused` says why). */
export function plainMetadata(value: unknown, refused?: (what: string) => void): Metadata {
  if (!isRecord(value)) {
    refused?.(`not an object of values (got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`})`);
    return {};
  }
  const kept: [string, MetadataValue][] = [];
  for (const [k, v] of Object.entries(value)) {
    if (kept.length >= MAX_METADATA_KEYS) {
      refused?.(`more than ${MAX_METADATA_KEYS} keys: the rest not kept`);
      break;
    }
    const plain = unwrapNative(v)?.value ?? v;
    const ok = typeof plain === 'string' ? plain.length <= MAX_METADATA_LENGTH : typeof plain === 'boolean' || (typeof plain === 'number' && Number.isFinite(plain));
    if (ok && k.length <= 200 && k !== '__proto__') kept.push([k, plain as MetadataValue]);
    else refused?.(`"${k.slice(0, 100)}" not kept: ${ok ? 'not a usable name' : `a value must be a string (≤ ${MAX_METADATA_LENGTH} characters), a finite number or a boolean`}`);
  }
  return Object.fromEntries(kept); // own keys only, even one named "__proto__"
}
