// Off the browser (server-side rendering, Node): the module is inert. createAnalytics() returns
// an instance that is off with the reason 'not-a-browser', sets no global, patches nothing, and
// holds nothing that keeps a process alive; what is recorded is dropped with that reason.

/** A page: a document, IndexedDB and BroadcastChannel. Anything else (Node, Deno, a worker of a server) is not one. */
export const inBrowser = (): boolean => typeof document !== 'undefined' && typeof indexedDB !== 'undefined' && typeof window !== 'undefined';

const REASON = 'not-a-browser' as const;

/** The inert instance (typed by the caller as its Analytics). */
export function inert(auditCapacity: number) {
  const entries: { time: string; name: string; outcome: 'dropped'; reason: string }[] = [];
  const dropped = (name: unknown) => {
    entries.push({ time: new Date().toISOString(), name: typeof name === 'string' ? name.slice(0, 100) : '(native event)', outcome: 'dropped', reason: REASON });
    if (entries.length > auditCapacity) entries.shift();
  };
  const done = () => Promise.resolve();
  const self = {
    ready: done(),
    record: (name: unknown) => dropped(name),
    recordNative: () => dropped(undefined),
    isEnabled: () => false,
    setEnabled: done,
    enable: done,
    disable: done,
    subscribe: () => () => undefined,
    config: () =>
      Promise.resolve({ analyticsId: '', sessionId: '', enabled: false, reason: REASON, metadata: {}, storage: 'unavailable' as const, delivery: { outbox: 'memory' as const, pending: 0, delivering: false, transport: 'not-loaded' as const } }),
    audit: () => entries.map((e) => ({ ...e })),
    printAudit: () => console.table(self.audit()),
    clear: done,
    setMetadata: done,
    flush: done,
    shutdown: done,
    details: () => 'Analytics is off here: this is not a browser (server-side rendering), so nothing is recorded or sent.',
  };
  return self;
}
