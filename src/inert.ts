// Off the browser (server-side rendering, Node): the stages' stand-in. createAnalytics() loads
// this instead of core.ts, so the instance is off with the reason 'not-a-browser', sets no
// global, patches nothing, and holds nothing that keeps a process alive; what is recorded is
// dropped with that reason. A chunk of its own: pages never fetch it.
import type { Intake } from './1-record.js';
import type { AuditEntry } from './7-audit.js';
import type { Core } from './core.js';
import type { ResolvedOptions } from './options.js';

const REASON = 'not-a-browser' as const;

export function startCore(opts: ResolvedOptions, _notify: unknown, intake: Intake): Core {
  const entries: AuditEntry[] = [];
  const dropped = (name: unknown) => {
    entries.push({ time: new Date().toISOString(), name: typeof name === 'string' ? name.slice(0, 100) : '(native event)', outcome: 'dropped', reason: REASON });
    if (entries.length > opts.auditCapacity) entries.shift();
  };
  const done = () => Promise.resolve();
  const dropAll = () => void intake.drain((kind, name) => dropped(kind === 0 ? name : undefined));
  return {
    ready: done(),
    take: dropAll,
    refuse: dropAll,
    state: () => ({ enabled: false, reason: REASON }),
    setEnabled: done,
    config: () =>
      Promise.resolve({ analyticsId: '', sessionId: '', enabled: false, reason: REASON, metadata: {}, storage: 'unavailable', delivery: { outbox: 'memory', pending: 0, delivering: false, transport: 'not-loaded' } }),
    audit: () => entries.map((e) => ({ ...e })),
    clear: done,
    setMetadata: done,
    flush: done,
    shutdown: done,
    details: () => 'Analytics is off here: this is not a browser (server-side rendering), so nothing is recorded or sent.',
  };
}
