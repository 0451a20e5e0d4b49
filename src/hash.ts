// hashed(): the native SDK's hash of user-provided names, byte for byte.
//   lowercase hex of SHA-256(salt bytes ‖ value bytes), salt = UTF-8 of the fixed UUID below.
// SHA-256 comes from @noble/hashes (audited, synchronous, no WebCrypto): crypto.subtle is
// missing outside secure contexts (a viewer served over plain http on a LAN), and is async.
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { safeString } from './plain.js';

/** A value in the native SDK's serde shape: the type is explicit. */
export type NativeProperty = { String: string } | { Integer: number } | { Float: number } | { Bool: boolean };

const utf8 = new TextEncoder();
const utf8ToBytes = (s: string) => utf8.encode(s);
const SALT = utf8ToBytes('d6d6bed3-028a-49ac-94dc-8c89cfb19379');
/** The last strings hashed (a burst names the same application again and again); at most MEMO. */
const memo = new Map<string, string>();
const MEMO = 256;

/**
 * Hashes like the native SDK. A bare number is an Integer when it is a safe integer, else a
 * Float; pass `{ Float: 1 }` to choose explicitly. Never throws: an `{ Integer }` that is not
 * a safe integer is hashed as the Float it is, and anything else as its string form.
 */
export function hashed(value: string | number | boolean | NativeProperty): string {
  if (typeof value !== 'string') return digest(value);
  let hex = memo.get(value);
  if (hex === undefined) {
    if (memo.size >= MEMO) memo.clear();
    memo.set(value, (hex = digest(value)));
  }
  return hex;
}

const digest = (value: unknown) => bytesToHex(sha256.create().update(SALT).update(valueBytes(value)).digest());

function valueBytes(value: unknown): Uint8Array {
  if (typeof value === 'string') return utf8ToBytes(value);
  if (typeof value === 'boolean') return Uint8Array.of(value ? 1 : 0);
  if (typeof value === 'number') return Number.isSafeInteger(value) ? integerBytes(value) : floatBytes(value);
  if (typeof value === 'object' && value !== null) {
    const v = value as Partial<Record<'String' | 'Integer' | 'Float' | 'Bool', unknown>>;
    if (typeof v.String === 'string') return utf8ToBytes(v.String);
    if (typeof v.Bool === 'boolean') return Uint8Array.of(v.Bool ? 1 : 0);
    if (typeof v.Integer === 'number') return Number.isSafeInteger(v.Integer) ? integerBytes(v.Integer) : floatBytes(v.Integer);
    if (typeof v.Float === 'number') return floatBytes(v.Float);
  }
  return utf8ToBytes(safeString(value));
}

/** i64, little-endian two's complement. */
function integerBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigInt64(0, BigInt(n), true);
  return bytes;
}

/** f64, little-endian IEEE-754. */
function floatBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, n, true);
  return bytes;
}
