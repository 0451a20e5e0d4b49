// Stage 7 — the audit: a bounded, in-memory record of what left the browser and what did not.
// Memory only: persisting it would itself be a log of the user's activity.

export interface AuditEntry {
  /** ISO 8601. */
  time: string;
  name: string;
  outcome: 'sent' | 'dropped';
  /** For 'dropped': why it never left. For 'sent': a note, e.g. properties the catalog removed. */
  reason?: string;
  /** For 'sent': exactly the properties the server receives. */
  properties?: Record<string, unknown>;
}

export interface Audit {
  add(entry: Omit<AuditEntry, 'time'>): void;
  entries(): AuditEntry[];
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
    entries() {
      // Oldest first; copies, so a curious user in devtools cannot edit the record.
      const ordered = ring.length < capacity ? ring : [...ring.slice(next), ...ring.slice(0, next)];
      return ordered.map((e) => structuredClone(e));
    },
  };
}
