// recordNative() takes the viewer's web pipeline's own PostHog batch JSON (issue 10): each event
// validated, gated, allow-listed and audited like any other; api_key, distinct_id, session_id
// and event_id replaced by ours; the timestamp kept.
import { describe, expect, test } from 'vitest';
import { MODULE_OWNED } from '../../src/reserved';
import { arrived, start } from './helpers';
import { PIPELINE, PIPELINE_TEXT } from './pipeline-fixtures';

const NOT_KEPT = ['session_id', 'event_id', ...MODULE_OWNED]; // ours replace them (module-owned: from this page)

describe('one fixture per event, as posthog.rs serialises it', () => {
  test.each(Object.keys(PIPELINE) as (keyof typeof PIPELINE)[])('%s: as text and as an object', async (name) => {
    const { a, key } = start();
    a.recordNative(PIPELINE_TEXT[name]); // pretty-printed text, as the WASM sends it
    a.recordNative(PIPELINE[name]); // already parsed
    const events = await arrived(key, 2);
    const config = await a.config();
    const sent = PIPELINE[name].batch[0]!;
    for (const e of events) {
      expect(e.event).toBe(sent.event);
      expect(e.raw.timestamp).toBe(new Date(sent.timestamp).toISOString()); // the same instant, kept
      expect(e.properties).toMatchObject({ distinct_id: config.analyticsId, session_id: config.sessionId, $geoip_disable: true });
      expect(e.properties.distinct_id).not.toBe(sent.distinct_id);
      if (sent.event === '$identify') expect(e.properties.$set).toEqual(sent.$set);
      else if (sent.event === '$set') expect(e.properties.$set).toEqual(sent.properties.$set);
      else {
        const expected = Object.fromEntries(Object.entries(sent.properties).filter(([k]) => !NOT_KEPT.includes(k)));
        expect(e.properties).toMatchObject(expected);
        expect(typeof e.properties.event_id).toBe('number'); // ours, per page load
        expect(e.properties.session_id).not.toBe(sent.properties.session_id);
      }
    }
    expect(a.audit().filter((x) => x.outcome === 'dropped')).toEqual([]);
  });
});

describe('the batch as a whole', () => {
  test('several events in one batch: each judged on its own', async () => {
    const { a, key } = start();
    const batch = {
      api_key: 'phc_viewer_key',
      batch: [PIPELINE.settings_opened.batch[0], { ...PIPELINE.load_data_source.batch[0], properties: { source_type: 1 } }, { event: 'no_such_event', timestamp: '2026-11-29T17:22:05Z', properties: {} }, PIPELINE.help_button_clicked.batch[0]],
    };
    a.recordNative(JSON.stringify(batch, null, 2));
    const events = await arrived(key, 2);
    expect(events.map((e) => e.event).sort()).toEqual(['help-button-clicked', 'settings-opened']);
    expect(a.audit().filter((x) => x.outcome === 'dropped').map((x) => [x.name, x.reason])).toEqual([
      ['load_data_source', 'property "source_type" must be a string, got number'],
      ['no_such_event', 'unknown event "no_such_event" (not in the catalog)'],
    ]);
  });

  test.each<[string, unknown, string]>([
    ['batch not an array', { api_key: 'k', batch: {} }, '"batch" is not an array'],
    ['an item not an object', { batch: [42] }, 'a batch item is not a JSON object'],
    ['no event name', { batch: [{ timestamp: '2026-11-29T17:22:05Z', properties: {} }] }, '"event" is not a string'],
    ['a bad timestamp', { batch: [{ event: 'settings-opened', timestamp: '29/11/2026', properties: {} }] }, '"timestamp" is not an RFC 3339 time'],
    ['ten fraction digits', { batch: [{ event: 'settings-opened', timestamp: '2026-11-29T17:22:05.1234567891Z', properties: {} }] }, '"timestamp" is not an RFC 3339 time'],
    ['$set without properties.$set', { batch: [{ event: '$set', timestamp: '2026-11-29T17:22:05Z', properties: {} }] }, '"properties.$set" is not an object'],
    ['$identify with a $set that is not an object', { batch: [{ event: '$identify', timestamp: '2026-11-29T17:22:05Z', properties: {}, $set: 'x' }] }, '"$set" is not an object'],
  ])('malformed: %s → dropped with a reason', async (_what, input, reason) => {
    const { a } = start();
    a.recordNative(input as object);
    expect(a.audit()).toEqual([expect.objectContaining({ outcome: 'dropped', reason: `malformed native event: ${reason}` })]);
  });
});
