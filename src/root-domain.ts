// The native URL rule: never send a URL as is. From the viewer's URL keep only the host's
// root domain (its last two labels), which is then hashed; an IP address or a dotless host
// has none. Only on the project's own domain is the URL sent, as `rerun_url` — and, stricter
// than native, only what says which page and which of the project's recordings (ownUrl()).
import { hashed } from './hash.js';

/** The project's own domain: the one place a full URL may be sent. */
export const OWN_DOMAIN = 'rerun.io';

/** `http://app.rerun.io/x` → `rerun.io`; IPs, `localhost`, scheme-less strings → undefined. */
export function rootDomain(url: string): string | undefined {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return undefined; // not an absolute URL (e.g. "rerun.io" without a scheme)
  }
  if (host.startsWith('[') || /^\d+(\.\d+){3}$/.test(host)) return undefined; // IPv6 / IPv4
  const labels = host.split('.').filter(Boolean);
  if (labels.length < 2) return undefined; // localhost, intranet names
  return labels.slice(-2).join('.');
}

/**
 * `rerun_url`: a URL on the project's own domain, reduced to what says which page and which
 * example: scheme, host and path are kept; userinfo and the fragment never are; a query value
 * is kept only if it is itself a URL on the project's domain (reduced the same way, e.g.
 * `?url=https://app.rerun.io/examples/dna.rrd`). Everything else — a signed recording URL on
 * someone's bucket, an OAuth `code`, a token — is dropped with its key. Undefined off-domain.
 */
export function ownUrl(url: string, depth = 0): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || rootDomain(u.href) !== OWN_DOMAIN) return undefined;
  const kept = new URLSearchParams();
  if (depth < 2) {
    for (const [key, value] of u.searchParams) {
      const inner = ownUrl(value, depth + 1);
      if (inner !== undefined) kept.append(key, inner);
    }
  }
  const query = kept.toString();
  return `${u.protocol}//${u.host}${u.pathname}${query ? `?${query}` : ''}`;
}

type LocationProps = { hashed_root_domain?: string; rerun_url?: string };
let last: { url: string; props: LocationProps } | undefined;

/** The location properties of an event, from the viewer's URL (asked on every record: the last answer is kept). */
export function locationProps(url: string): LocationProps {
  if (last?.url !== url) {
    const root = rootDomain(url);
    const own = root === OWN_DOMAIN ? ownUrl(url) : undefined;
    last = { url, props: root ? { hashed_root_domain: hashed(root), ...(own ? { rerun_url: own } : {}) } : {} };
  }
  return last.props;
}
