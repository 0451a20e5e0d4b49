// Stage 1 — record: take what the host hands us, and nothing more, on the host's own time.
//
// record() and recordNative() are called on the viewer's hot paths (and from its WASM), so
// they only queue: the name, a shallow copy of the properties (a copy, so that what the host
// changes afterwards is not what we check), the time. Judging (2-validate.ts), consent (3) and
// storage (4) run on the queue later, off the host's call: it is handed over at the next
// microtask (each tick's calls together), and judged in tasks of the module's own (core.ts).
// The queue is bounded: past INTAKE_LIMIT calls before it is judged (one tick; or, at page
// startup, until the stages' chunk is there) the newest are only counted (the audit gets one
// entry saying how many), so a runaway loop cannot grow memory.

/** Events taken within one tick, at most (as many as the outbox holds). */
export const INTAKE_LIMIT = 1000;

/** Props whose reading threw (a throwing getter, a hostile proxy): reported, never rethrown. */
export class Unreadable {
  constructor(readonly error: unknown) {}
}

export interface Intake {
  record(name: unknown, props: unknown): void;
  native(input: unknown): void;
  /** Hands every queued call to `take`, oldest first; returns how many were refused as too many. */
  drain(take: (kind: 0 | 1, a: unknown, b: unknown, time: number) => void): number;
}

/** `wake` runs once per batch, at the next microtask after the first queued call. */
export function createIntake(wake: () => void): Intake {
  let q: unknown[] = [];
  let refused = 0;
  let scheduled = false;
  const push = (kind: 0 | 1, a: unknown, b: unknown) => {
    if (q.length >= INTAKE_LIMIT * 4) return void refused++;
    q.push(kind, a, b, Date.now());
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(() => ((scheduled = false), wake()));
    }
  };
  return {
    record(name, props) {
      push(0, name, typeof props === 'object' && props !== null ? copy(props) : props);
    },
    native(input) {
      // A string is immutable; an object (already parsed) is copied down to its property values.
      push(1, typeof input === 'object' && input !== null ? copyNative(input) : input, undefined);
    },
    drain(take) {
      const items = q;
      q = [];
      for (let i = 0; i < items.length; i += 4) take(items[i] as 0 | 1, items[i + 1], items[i + 2], items[i + 3] as number);
      const n = refused;
      refused = 0;
      return n;
    },
  };
}

// Arrays are passed on as they are (the validate stage refuses them with its own reason); the
// check is inside the try: Array.isArray throws on a revoked proxy.
function copy(props: object): object {
  try {
    return Array.isArray(props) ? props : { ...props };
  } catch (err) {
    return new Unreadable(err);
  }
}

function copyNative(event: object): object {
  try {
    if (Array.isArray(event)) return event;
    const e = { ...event } as Record<string, unknown>;
    if (typeof e.props === 'object' && e.props !== null && !Array.isArray(e.props)) {
      const props = { ...e.props } as Record<string, unknown>;
      for (const k of Object.keys(props)) if (typeof props[k] === 'object' && props[k] !== null) props[k] = { ...(props[k] as object) };
      e.props = props;
    }
    return e;
  } catch (err) {
    return new Unreadable(err);
  }
}
