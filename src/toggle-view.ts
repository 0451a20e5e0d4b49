// What <rerun-analytics-toggle> shows (toggle-element.ts registers it): a labelled native
// checkbox, plus a plain-words line saying why it is on or off. It follows every change — this
// tab, another tab, devtools — through subscribe(). Loaded when the first toggle is shown.
import type { Analytics, AnalyticsState } from './analytics.js';
import type { Reason } from './3-consent-gate.js';

/** What the line under the checkbox says, per reason. */
export const REASON_TEXT: Record<Reason, string> = {
  loading: 'Loading your choice…',
  default: 'On. Anonymous and minimal; you can turn it off at any time.',
  'user-opted-in': 'On, because you turned it on.',
  'user-opted-out': 'Off, because you turned it off.',
  'privacy-signal': 'Off, because your browser asks sites not to track you (Global Privacy Control or Do Not Track). Turning it on here overrides that.',
  automation: 'Off: this browser is controlled by automation.',
  'dev-build': 'Off in development builds.',
  'embedder-policy': 'Off: the page embedding the viewer does not allow analytics.',
  'storage-unavailable': 'Off: this browser cannot store your choice, so nothing is sent.',
  'not-a-browser': 'Off: not running in a browser.',
};

/** Reasons the checkbox cannot change: it is shown disabled, with the reason. */
const LOCKED: readonly Reason[] = ['loading', 'automation', 'dev-build', 'embedder-policy', 'storage-unavailable', 'not-a-browser'];

let ids = 0;

export type Bindable = Pick<Analytics, 'ready' | 'isEnabled' | 'setEnabled' | 'subscribe' | 'config'>;

/** Renders the toggle into `el` and keeps it in step; returns what undoes it. */
export function mount(el: HTMLElement & { analytics?: Bindable }): () => void {
  const id = `rerun-analytics-toggle-${++ids}`;
  const label = document.createElement('label');
  const input = document.createElement('input');
  input.type = 'checkbox';
  input.setAttribute('aria-describedby', `${id}-why`);
  const text = document.createElement('span');
  text.textContent = el.getAttribute('label') ?? 'Send anonymous usage data';
  label.append(input, ' ', text);
  const why = document.createElement('small');
  why.id = `${id}-why`;
  why.setAttribute('aria-live', 'polite');
  why.style.display = 'block';
  el.replaceChildren(label, why);

  const show = ({ enabled, reason }: AnalyticsState | { enabled: boolean; reason: Reason }) => {
    input.checked = enabled;
    input.disabled = LOCKED.includes(reason);
    why.textContent = REASON_TEXT[reason] ?? reason;
    el.dataset.reason = reason;
  };
  const analytics = el.analytics ?? ((globalThis as Record<string, unknown>)[el.getAttribute('global') ?? 'rerunAnalytics'] as Bindable | undefined);
  if (!analytics) {
    show({ enabled: false, reason: 'loading' });
    return () => undefined;
  }
  el.analytics = analytics;
  const reread = () => analytics.config().then((c) => show({ enabled: c.enabled, reason: c.reason as Reason }));
  input.addEventListener('change', () => {
    // Re-read afterwards: a click may not change the effective state (then no event comes).
    void analytics.setEnabled(input.checked).then(reread);
  });
  const unsubscribe = analytics.subscribe(show);
  show({ enabled: analytics.isEnabled(), reason: 'loading' });
  void analytics.ready.then(reread);
  return unsubscribe;
}
