// re-analytics-web: anonymous, minimal, auditable analytics for the web viewer.
// Importing this module does nothing; everything starts at createAnalytics().
export { createAnalytics } from './analytics.js';
export type { Analytics, AnalyticsState, ConfigSnapshot } from './analytics.js';
export type { AnalyticsOptions } from './options.js';
export type { AuditEntry } from './7-audit.js';
export type { Reason } from './3-consent-gate.js';
export { hashed, type NativeProperty } from './hash.js';
export { rootDomain } from './root-domain.js';
export { CATALOG } from './catalog.js';
export type { Catalog, CatalogEventName, PropsOf, PropsFor, EventSpec, EventKind, PropSpec } from './catalog.js';
export { defineAnalyticsToggle, type AnalyticsToggleElement } from './toggle-element.js';
export type { Bindable as ToggleBindable } from './toggle-view.js';
export type { HostEvents } from './options.js';
export { guardViewerTelemetry, VIEWER_TELEMETRY_URL, type TelemetryGuard } from './guard.js';
export { REASON_TEXT } from './reason-text.js';
