// The viewer's web pipeline's PostHog batches (re_analytics: web/pipeline.rs, posthog.rs), one
// per event, exactly as serialised: pretty-printed with two spaces (one compact, as a check),
// floats as `1.0`, hashed ids already hashed, timestamps with 0–9 fraction digits.
import identify from '../fixtures/pipeline/identify.json?raw';
import viewerStarted from '../fixtures/pipeline/viewer_started.json?raw';
import openRecording from '../fixtures/pipeline/open_recording.json?raw';
import loadDataSource from '../fixtures/pipeline/load_data_source.json?raw';
import settingsOpened from '../fixtures/pipeline/settings_opened.json?raw';
import helpButtonClicked from '../fixtures/pipeline/help_button_clicked.json?raw';
import welcomeNavigation from '../fixtures/pipeline/welcome_navigation.json?raw';
import crashPanic from '../fixtures/pipeline/crash_panic.json?raw';
import setPerson from '../fixtures/pipeline/set_person.json?raw';

export interface PipelineBatch {
  api_key: string;
  batch: { timestamp: string; event: string; distinct_id: string; properties: Record<string, unknown> & { $set?: Record<string, unknown> }; $set?: Record<string, unknown> }[];
}

/** The raw text the WASM sends, per fixture. */
export const PIPELINE_TEXT = {
  identify,
  viewer_started: viewerStarted,
  open_recording: openRecording,
  load_data_source: loadDataSource,
  settings_opened: settingsOpened,
  help_button_clicked: helpButtonClicked,
  welcome_navigation: welcomeNavigation,
  crash_panic: crashPanic,
  set_person: setPerson,
};

export const PIPELINE = Object.fromEntries(Object.entries(PIPELINE_TEXT).map(([k, v]) => [k, JSON.parse(v) as PipelineBatch])) as Record<keyof typeof PIPELINE_TEXT, PipelineBatch>;
