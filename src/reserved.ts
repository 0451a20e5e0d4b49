// Names no host may take, shared by the option check at startup (options.ts) and the stages
// that use them. Kept apart so the startup chunk carries the names, not the code behind them.

/** The built-in events (catalog.ts declares each, and a type check keeps the two lists equal). */
export const BUILT_IN_EVENTS = ['$identify', 'viewer_started', 'open_recording', 'load_data_source', 'settings-opened', 'help-button-clicked', 'welcome_navigation', 'crash-panic', '$set'] as const;

/**
 * Keys on every outgoing event beside the catalog's declared properties; 5-allow-list.ts writes
 * exactly these (and says why each is there).
 */
export const FIXED_PROPERTIES = ['distinct_id', 'session_id', 'event_id', '$geoip_disable', '$set'] as const;

/**
 * Properties the module owns: whatever a caller passes for them is replaced, and where the
 * module has no value they are left out. A caller can never smuggle a URL in as `rerun_url`.
 */
export const MODULE_OWNED = ['app_env', 'hashed_root_domain', 'rerun_url'] as const;

/** Names that mean something to every JavaScript object: never an event's or a property's. */
export const UNSAFE_NAMES = ['__proto__', 'constructor', 'prototype'] as const;

/**
 * No host property may be named like a fixed one, nor `token` (PostHog routes an event by it),
 * nor like one the module fills in itself (the host's value would be replaced: every event dropped).
 */
export const RESERVED_PROPERTIES = [...FIXED_PROPERTIES, 'token', ...MODULE_OWNED, ...UNSAFE_NAMES] as const;

/** Property names a host event may not declare (checked by the type of `events`, and at run time). */
export type ReservedProperty = (typeof RESERVED_PROPERTIES)[number] | `$${string}`;
/** Event names a host may not declare. */
export type ReservedEventName = (typeof BUILT_IN_EVENTS)[number] | (typeof UNSAFE_NAMES)[number] | `$${string}` | '';
