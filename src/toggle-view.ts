// What <rerun-analytics-toggle> shows (toggle-element.ts registers it): a labelled native
// checkbox, plus a plain-words line saying why it is on or off. It follows every change — this
// tab, another tab, devtools — through subscribe(). Loaded when the first toggle is shown.
import type { Analytics, AnalyticsState } from './analytics.js';
import type { Reason } from './3-consent-gate.js';
import { REASON_TEXT } from './reason-text.js';
import { CREATED_EVENT } from './toggle-element.js';

/** Reasons the checkbox cannot change: it is shown disabled, with the reason. */
const LOCKED: readonly Reason[] = ['loading', 'automation', 'dev-build', 'embedder-policy', 'storage-unavailable', 'not-a-browser'];

let ids = 0;

export type Bindable = Pick<Analytics, 'ready' | 'isEnabled' | 'setEnabled' | 'subscribe' | 'config'>;

/**
 * Renders the toggle into `el` for `bound` (or the devtools global its `global` attribute
 * names) and keeps it in step; returns what undoes it. With neither yet, it shows "loading" and
 * calls `rebind` once createAnalytics() sets the global.
 */
export function mount(el: HTMLElement, bound: Bindable | undefined, rebind: () => void): () => void {
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

  let live = true; // answers that come after unmount() (a re-bind, a disconnect) are not drawn
  const show = ({ enabled, reason }: AnalyticsState | { enabled: boolean; reason: Reason }) => {
    if (!live) return;
    input.checked = enabled;
    input.disabled = LOCKED.includes(reason);
    why.textContent = REASON_TEXT[reason] ?? reason;
    el.dataset.reason = reason;
  };
  const analytics = bound ?? ((globalThis as Record<string, unknown>)[el.getAttribute('global') ?? 'rerunAnalytics'] as Bindable | undefined);
  if (!analytics) {
    show({ enabled: false, reason: 'loading' });
    globalThis.addEventListener?.(CREATED_EVENT, rebind, { once: true });
    return () => globalThis.removeEventListener?.(CREATED_EVENT, rebind);
  }
  // Bound by the global: a newer instance taking it over (the old one shut down, say) is shown instead.
  if (!bound) globalThis.addEventListener?.(CREATED_EVENT, rebind, { once: true });
  const reread = () => analytics.config().then((c) => c && show(c));
  input.addEventListener('change', () => {
    // Re-read afterwards: a click may not change the effective state (then no event comes).
    void analytics.setEnabled(input.checked).then(reread);
  });
  const unsubscribe = analytics.subscribe(show);
  show({ enabled: analytics.isEnabled(), reason: 'loading' });
  void analytics.ready.then(reread);
  return () => {
    live = false;
    unsubscribe();
    globalThis.removeEventListener?.(CREATED_EVENT, rebind);
  };
}
