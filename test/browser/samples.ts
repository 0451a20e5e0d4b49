// Valid properties for each catalog event, as a viewer would record them.
export const BUILD_INFO = {
  features: 'default',
  git_hash: 'abc123',
  rerun_version: '0.24.0',
  rust_version: '1.85.0',
  llvm_version: '19.1.7',
  target: 'wasm32-unknown-unknown',
  build_date: '2025-04-03',
  debug: false,
  rerun_workspace: false,
};

export const SAMPLES = {
  $identify: { ...BUILD_INFO, python_version: '3.12.1' },
  viewer_started: {
    is_docker: false,
    is_wsl: false,
    graphics_adapter_backend: 'webgpu',
    re_renderer_device_tier: 'FullWebGpuSupport',
    pixels_per_point: 2,
    zoom_factor: 1.25,
  },
  open_recording: {
    application_id: 'rerun_example_dna',
    recording_id: 'rec-1',
    store_source: 'file',
    store_version: '0.24.0',
    app_id_starts_with_rerun_example: true,
  },
  load_data_source: { source_type: 'file', file_extension: 'rrd', started_successfully: true },
  'settings-opened': {},
  'help-button-clicked': {},
  welcome_navigation: { card_type: 'example', destination: 'dna', cta_cloud: false, is_logged_in: false, has_server: false, rerun_version: '0.24.0' },
  'crash-panic': { ...BUILD_INFO, callstack: 'at viewer::ui (src/ui.rs:10)', message: 'index out of bounds' },
  $set: { email: 'someone@example.com', organization_id: 'org_1' },
} as const;

/** Opt-in metadata keys the tests set: the payload scan admits them in `$identify`'s `$set`. */
export const TEST_METADATA_KEYS = ['team', 'seats', 'beta'];

/** Events the tests declare through the `events` option: the payload scan admits them too. */
export const TEST_EVENTS = {
  export_clicked: { kind: 'Append', why: 'Counts exports, to see whether the feature is used.', props: { format: 'string', rows: 'integer?' } },
} as const;
