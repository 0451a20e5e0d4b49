// Stage 7 — the audit: a bounded, in-memory record of what left the browser and what did not.
// Memory only: persisting it would itself be a log of the user's activity.

export interface AuditEntry {
  /** ISO 8601. */
  time: string;
  name: string;
  /**
   * 'sent': the endpoint received it (a request carrying it was answered 2xx, not a redirect).
   * 'dropped': it never left, or the endpoint refused it (the reason says which). 'unconfirmed':
   * its request was aborted (an opt-out, a clear) after its body may have reached the endpoint.
   */
  outcome: 'sent' | 'dropped' | 'unconfirmed';
  /** For 'dropped': why. For 'sent': a note (properties the catalog removed, a replay, a quota answer). */
  reason?: string;
  /** For 'sent': exactly the properties the server receives. */
  properties?: Record<string, unknown>;
  /** The event's uuid on the wire, once it has one (the server deduplicates on it). */
  uuid?: string;
  /** For 'sent': how many requests carried it until one was answered (1 unless retried). */
  attempts?: number;
}

export interface Audit {
  add(entry: Omit<AuditEntry, 'time'>): void;
  entries(): AuditEntry[];
  /** Whether an entry about this event uuid is still in the buffer. */
  has(uuid: string): boolean;
}

/** A ring buffer of `capacity` entries: the oldest is overwritten, memory never grows. */
export function createAudit(capacity: number): Audit {
  const ring: AuditEntry[] = [];
  let next = 0;
  return {
    add(entry) {
      const full: AuditEntry = { time: new Date().toISOString(), ...entry };
      if (ring.length < capacity) ring.push(full);
      else ring[next] = full;
      next = (next + 1) % capacity;
    },
    has: (uuid) => ring.some((e) => e.uuid === uuid),
    entries() {
      // Oldest first; copies, so a curious user in devtools cannot edit the record.
      const ordered = ring.length < capacity ? ring : [...ring.slice(next), ...ring.slice(0, next)];
      return ordered.map((e) => structuredClone(e));
    },
  };
}
