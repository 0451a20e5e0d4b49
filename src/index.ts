// re-analytics-web: anonymous, minimal, auditable analytics for the web viewer.
// Importing this module does nothing; everything starts at createAnalytics().
export { createAnalytics } from './analytics';
export type { Analytics, AnalyticsState, ConfigSnapshot } from './analytics';
export type { AnalyticsOptions } from './options';
export type { AuditEntry } from './7-audit';
export type { Reason } from './3-consent-gate';
export { hashed, type NativeProperty } from './hash';
export { rootDomain } from './root-domain';
export { CATALOG } from './catalog';
export type { Catalog, CatalogEventName, PropsOf, PropsFor, EventSpec, EventKind, PropSpec } from './catalog';
export { defineAnalyticsToggle, REASON_TEXT } from './toggle-element';
