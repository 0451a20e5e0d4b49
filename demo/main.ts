// The demo host page: the same calls a viewer makes, against the local capture sink.
import { createAnalytics, defineAnalyticsToggle } from '../src/index.ts';
import { SAMPLES } from '../test/browser/samples.ts';

const analytics = createAnalytics({
  projectKey: 'phc_demo',
  apiHost: location.origin, // the dev server's own capture sink (dev/capture-sink.ts)
  flushIntervalMs: 1000,
});

defineAnalyticsToggle(); // <rerun-analytics-toggle> binds to the rerunAnalytics global

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const select = $<HTMLSelectElement>('event');

for (const name of Object.keys(SAMPLES)) select.add(new Option(name, name));
const showProps = () => ($('props').textContent = JSON.stringify(SAMPLES[select.value as keyof typeof SAMPLES], null, 2));
select.onchange = showProps;
showProps();

$('record').onclick = () => analytics.record(select.value, { ...SAMPLES[select.value as keyof typeof SAMPLES] });
$('bad').onclick = () => analytics.record('load_data_source', { source_type: 42, secret_url: location.href } as never);
$('flush').onclick = () => void analytics.flush();
$('clear').onclick = () => void analytics.clear();

const showState = () => {
  void analytics.config().then((c) => {
    $('state').textContent = ` — ${c.enabled ? 'on' : 'off'} (${c.reason})`;
    $('config').textContent = JSON.stringify(c, null, 2);
  });
};
analytics.subscribe(showState);
void analytics.ready.then(showState);

async function refresh() {
  const rows = analytics.audit().reverse().map((e) => {
    const detail = e.outcome === 'sent' ? `${e.reason ? `${e.reason}\n` : ''}${JSON.stringify(e.properties)}` : e.reason ?? '';
    return `<tr class="${e.outcome}"><td>${e.time.slice(11, 23)}</td><td>${escape(e.name)}</td><td>${e.outcome}</td><td><code>${escape(detail)}</code></td></tr>`;
  });
  $('audit').innerHTML = rows.join('');
  const got = (await (await fetch('/__sink/received?key=phc_demo')).json()) as { events: { event: string; properties: unknown }[] };
  $('received').textContent = got.events.map((e) => `${e.event} ${JSON.stringify(e.properties)}`).reverse().join('\n') || '(nothing yet)';
  showState();
}
const escape = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
setInterval(() => void refresh(), 700);
