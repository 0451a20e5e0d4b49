// Whether this is a page. Off one (server-side rendering, Node, Deno, a server's worker) the
// module is inert: createAnalytics() runs inert.ts instead of the stages, guardViewerTelemetry()
// leaves fetch alone.

/**
 * A page: a window with a document. Anything else is not one. A page without IndexedDB
 * (locked-down browsers, some webviews) is one: its storage is unavailable, so analytics is off,
 * and the guard still takes what a shipped viewer posts (when unsure, nothing leaves).
 */
export const inBrowser = (): boolean => typeof document !== 'undefined' && typeof window !== 'undefined';
