// Runs after every other browser test file (see the sequencer in vite.config.ts) and scans
// everything the capture endpoint received during the whole run.
import { expect, test } from 'vitest';
import { CATALOG } from '../../src/catalog';
import { FIXED_PROPERTIES } from '../../src/5-allow-list';
import { OWN_DOMAIN, rootDomain } from '../../src/root-domain';
import { received } from './helpers';
import { TEST_EVENTS, TEST_METADATA_KEYS } from './samples';

const WIRE_NAMES = new Map(Object.entries({ ...CATALOG, ...TEST_EVENTS }).map(([name, spec]) => [spec.kind === 'Identify' ? '$identify' : spec.kind === 'SetPersonProperties' ? '$set' : name, spec]));

function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (value && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}

test('every payload of the run: nothing outside the allow-list, nothing about the page', async () => {
  const { events, requests, duplicates } = await received();
  // At least once out, exactly once in: the sink deduplicates on uuid as PostHog does. A
  // duplicate (after a fault: a keepalive at close, a page back from the cache) is the very same
  // event every time — name, timestamp, properties — or the server would keep a wrong one.
  const first = new Map(events.map((e) => [String(e.raw.uuid), e]));
  const differing = duplicates.filter((d) => JSON.stringify(d.raw) !== JSON.stringify(first.get(String(d.raw.uuid))?.raw));
  expect(differing.map((e) => `${e.api_key} ${e.event} ${String(e.raw.uuid)}`)).toEqual([]);
  console.info(`payload scan: ${duplicates.length} duplicates (each the same event as its first copy)`);
  // The scan means something only if the suite sent plenty, of every kind.
  expect(events.length).toBeGreaterThan(20);
  const names = new Set(events.map((e) => e.event));
  for (const name of ['$identify', '$set', 'settings-opened', 'load_data_source', 'viewer_started']) expect(names).toContain(name);
  expect(new Set(requests.map((r) => `${r.method} ${r.path}`))).toEqual(new Set(['POST /e/'])); // no flags, config, recordings
  expect(requests.filter((r) => r.error)).toEqual([]);

  const pageFacts = new Set<string>(['localhost', '127.0.0.1', 'HeadlessChrome', 'Mozilla/', '__vitest', '/test/', 'http:', 'https:', location.host, navigator.userAgent]);
  for (const e of events) for (const v of Object.values(e.page)) if (v) pageFacts.add(v.replace(/\/$/, ''));
  for (const e of events) if (e.page.origin) pageFacts.add(new URL(e.page.origin).host);

  const problems: string[] = [];
  for (const e of events) {
    if (e.page.cookie) problems.push(`${e.event}: a request carried cookies`);
    if (e.page.referer) problems.push(`${e.event}: a request carried a Referer (${e.page.referer})`);
    const spec = WIRE_NAMES.get(e.event);
    if (!spec) problems.push(`unknown event ${e.event}`);
    const extraTop = Object.keys(e.raw).filter((k) => !['uuid', 'event', 'properties', 'timestamp'].includes(k));
    if (extraTop.length) problems.push(`${e.event}: top-level ${extraTop.join(',')}`);
    for (const key of Object.keys(e.properties)) {
      const declared = spec?.kind === 'Append' && Object.hasOwn(spec.props, key);
      if (!declared && !(FIXED_PROPERTIES as readonly string[]).includes(key)) problems.push(`${e.event}: property ${key}`);
    }
    if ('event_id' in e.properties && spec?.kind !== 'Append') problems.push(`${e.event}: event_id on a person event`);
    if ('$set' in e.properties) {
      if (spec?.kind === 'Append') problems.push(`${e.event}: $set on an Append event`);
      for (const key of Object.keys(e.properties.$set as object)) {
        const ok = Object.hasOwn(spec?.props ?? {}, key) || (spec?.kind === 'Identify' && TEST_METADATA_KEYS.includes(key));
        if (!ok) problems.push(`${e.event}: $set.${key}`);
      }
    }
    if (e.properties.$geoip_disable !== true) problems.push(`${e.event}: $geoip_disable missing`);
    // The one URL that may leave: the viewer's own, only on the project's domain.
    const { rerun_url, ...rest } = e.properties;
    if (rerun_url !== undefined && rootDomain(String(rerun_url)) !== OWN_DOMAIN) problems.push(`${e.event}: rerun_url ${String(rerun_url)}`);
    for (const s of strings(rest)) {
      for (const fact of pageFacts) if (s.includes(fact)) problems.push(`${e.event}: value ${JSON.stringify(s).slice(0, 80)} contains ${fact}`);
    }
  }
  console.info(`payload scan: ${events.length} events in ${requests.length} requests, ${problems.length} problems`);
  expect(problems).toEqual([]);
});
