// The native URL rule: never send a URL as is. From the viewer's URL keep only the host's
// root domain (its last two labels), which is then hashed; an IP address or a dotless host
// has none. Only on the project's own domain is the full URL sent, as `rerun_url`.
import { hashed } from './hash';

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

type LocationProps = { hashed_root_domain?: string; rerun_url?: string };
let last: { url: string; props: LocationProps } | undefined;

/** The location properties of an event, from the viewer's URL (asked on every record: the last answer is kept). */
export function locationProps(url: string): LocationProps {
  if (last?.url !== url) {
    const root = rootDomain(url);
    last = { url, props: root ? { hashed_root_domain: hashed(root), ...(root === OWN_DOMAIN ? { rerun_url: url } : {}) } : {} };
  }
  return last.props;
}
