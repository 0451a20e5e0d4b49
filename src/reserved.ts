// Names no host may take, shared by the option check at startup (options.ts) and the stages
// that use them. Kept apart so the startup chunk carries the names, not the code behind them.

/** The built-in events (catalog.ts declares each, and a type check keeps the two lists equal). */
export const BUILT_IN_EVENTS = ['$identify', 'viewer_started', 'open_recording', 'load_data_source', 'settings-opened', 'help-button-clicked', 'welcome_navigation', 'crash-panic', '$set'] as const;

/**
 * Keys on every outgoing event beside the catalog's declared properties; 5-allow-list.ts writes
 * exactly these (and says why each is there).
 */
export const FIXED_PROPERTIES = ['distinct_id', 'session_id', 'event_id', '$geoip_disable', '$set'] as const;

/** No host property may be named like a fixed one, nor `token`: PostHog routes an event by it. */
export const RESERVED_PROPERTIES: readonly string[] = [...FIXED_PROPERTIES, 'token'];
