// Type-level tests, checked by `tsc` in `npm test` (never run): the catalog drives record()'s
// types, so names and properties autocomplete and mistakes in literal calls do not compile.
import { createAnalytics } from '../src';

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
}
