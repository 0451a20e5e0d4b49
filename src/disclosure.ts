// details(): the plain-language disclosure. The event list is generated from the catalog,
// so what users read can never drift from what the code sends.
import { parseSpec, type Catalog } from './catalog.js';
import { FIXED_PROPERTIES } from './5-allow-list.js';

export function disclosure(catalog: Catalog, globalName: string | false): string {
  const g = globalName || '<your analytics instance>';
  const events = Object.entries(catalog).map(([name, spec]) => {
    const props = Object.entries(spec.props).map(([k, s]) => {
      const { type, optional } = parseSpec(s);
      return `${k} (${type}${optional ? ', optional' : ''})`;
    });
    const rule = spec.derive ? `\n    before sending: ${spec.derive.why}` : '';
    return `- ${name}: ${spec.why}\n    properties: ${props.length ? props.join(', ') : 'none'}${rule}`;
  });
  return [
    'What this viewer collects, and why',
    '',
    'Anonymous usage events help the developers see which features are used, on which setups,',
    'and where the viewer breaks. You are identified by a random id made in your browser; only if',
    'you log in does the $set event below link it to your account (email and organization).',
    '',
    'Events that may be sent (nothing else can be: anything not listed is dropped):',
    ...events,
    '',
    `Also on every event: ${FIXED_PROPERTIES.join(', ')}`,
    '(the random id, a random per-page-load session id, a per-page-load counter, a request not to',
    'look up your location, and, for the person events, their declared properties).',
    '',
    'Never collected: page URLs (only a hash of the root domain; on rerun.io, the page without its',
    'query, except links to other rerun.io pages, and never its fragment), your IP-derived',
    'location, cookies, referrer, user agent, screen size, clicks, page views, session recordings,',
    'or the names of your recordings and applications (they are hashed).',
    '',
    'Until they are sent, events wait in your browser (IndexedDB), for 7 days at most; turning',
    'analytics off, or forgetting your id, deletes them at once.',
    '',
    `Opt out: the analytics toggle in the settings, or ${g}.disable() in the browser console.`,
    'It applies at once, in every open tab, and is remembered. Global Privacy Control and',
    'Do Not Track are honoured unless you enable analytics yourself.',
    `See exactly what was sent and what was dropped: ${g}.audit()`,
    `See your stored id and choice: await ${g}.config(); forget your id: ${g}.clear()`,
  ].join('\n');
}
