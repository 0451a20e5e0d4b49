// Type-level tests, checked by `tsc` in `npm test` (never run): the catalog drives record()'s
// types, so names and properties autocomplete and mistakes in literal calls do not compile.
import { createAnalytics, type AnalyticsState } from '../src';

export function typeChecks() {
  const a = createAnalytics({ projectKey: 'phc_types' });
  a.record('settings-opened');
  a.record('load_data_source', { source_type: 'file', started_successfully: true, file_extension: null });
  a.record('viewer_started', { is_docker: false, is_wsl: false, graphics_adapter_backend: 'webgpu', re_renderer_device_tier: 't', pixels_per_point: 1, zoom_factor: 1 }); // app_env and location are filled in
  // @ts-expect-error an event that is not in the catalog
  a.record('no_such_event');
  // @ts-expect-error a wrongly typed property
  a.record('load_data_source', { source_type: 1, started_successfully: true });
  // @ts-expect-error an undeclared property
  a.record('load_data_source', { source_type: 'file', started_successfully: true, url: 'x' });
  // @ts-expect-error a required property is missing
  a.record('load_data_source', { source_type: 'file' });
  const dynamic: string = String(Math.random());
  a.record(dynamic, { anything: 1 }); // a name known only at run time is checked at run time

  const b = createAnalytics({
    projectKey: 'phc_types',
    events: { export_clicked: { kind: 'Append', why: 'Counts exports.', props: { format: 'string', rows: 'integer?' } } },
  } as const);
  b.record('export_clicked', { format: 'csv' });
  b.record('settings-opened');
  // @ts-expect-error host-declared events are typed too
  b.record('export_clicked', { format: 1 });
  a.record('settings-opened', {});
  // @ts-expect-error an event without properties takes none
  a.record('settings-opened', { foo: 1 });

  // Declarations the runtime refuses (a TypeError at createAnalytics) do not compile either.
  const why = 'Counts it.';
  // @ts-expect-error person properties are the audited catalog's alone (kind Identify)
  createAnalytics({ projectKey: 'k', events: { e: { kind: 'Identify', why, props: {} } } } as const);
  // @ts-expect-error a $ name is PostHog's
  createAnalytics({ projectKey: 'k', events: { $pageview: { kind: 'Append', why, props: {} } } } as const);
  // @ts-expect-error a built-in event's name
  createAnalytics({ projectKey: 'k', events: { 'settings-opened': { kind: 'Append', why, props: {} } } } as const);
  // @ts-expect-error a reserved property (PostHog routes by token)
  createAnalytics({ projectKey: 'k', events: { e: { kind: 'Append', why, props: { token: 'string' } } } } as const);
  // @ts-expect-error a property the module fills in itself
  createAnalytics({ projectKey: 'k', events: { e: { kind: 'Append', why, props: { rerun_url: 'string' } } } } as const);
  // @ts-expect-error a $ property
  createAnalytics({ projectKey: 'k', events: { e: { kind: 'Append', why, props: { $current_url: 'string' } } } } as const);
  // @ts-expect-error not a property type
  createAnalytics({ projectKey: 'k', events: { e: { kind: 'Append', why, props: { n: 'number' } } } } as const);
  // Without `as const` too:
  // @ts-expect-error kind Identify
  createAnalytics({ projectKey: 'k', events: { e: { kind: 'Identify', why, props: {} } } });
  // @ts-expect-error a module-owned property
  createAnalytics({ projectKey: 'k', events: { e: { kind: 'Append', why, props: { app_env: 'string' } } } });
  // @ts-expect-error a $ name
  createAnalytics({ projectKey: 'k', events: { $pageview: { kind: 'Append', why, props: {} } } });
  // @ts-expect-error a built-in name
  createAnalytics({ projectKey: 'k', events: { viewer_started: { kind: 'Append', why, props: {} } } });
  createAnalytics({ projectKey: 'k', events: { e: { kind: 'Append', why, props: { n: 'integer' } } } }); // a good one compiles

  // config().reason is a Reason, assignable to the state subscribe() hands out.
  void a.config().then((c) => {
    const state: AnalyticsState = { enabled: c.enabled, reason: c.reason };
    return state;
  });
}
