// Stage 1 — record: turn what a host hands us into one plain shape, without judging it yet.
// Judging (is it declared, is it well typed) is 2-validate.ts's job; consent is 3's.
import type { EventKind, PropType } from './catalog';

export interface Recorded {
  name: unknown;
  /** Set when the caller said which kind it is (native JSON does); otherwise the catalog's. */
  kind?: EventKind;
  props: unknown;
  /** Explicit value types from the native `{ "Float": 1.0 }` shape. */
  types?: Record<string, PropType>;
  time: Date;
}

/** record(name, props) from JavaScript: the catalog gives the kind. */
export function fromRecord(name: unknown, props: unknown): Recorded {
  return { name, props: props ?? {}, time: new Date() };
}
