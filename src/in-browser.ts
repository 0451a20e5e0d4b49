// Whether this is a page. Off one (server-side rendering, Node, Deno, a server's worker) the
// module is inert: createAnalytics() runs inert.ts instead of the stages, guardViewerTelemetry()
// leaves fetch alone.

/** A page: a document, IndexedDB and BroadcastChannel. Anything else is not one. */
export const inBrowser = (): boolean => typeof document !== 'undefined' && typeof indexedDB !== 'undefined' && typeof window !== 'undefined';
