// <rerun-analytics-toggle>: the settings panel's switch, as a small accessible custom element
// (a labelled native checkbox, plus a plain-words line saying why it is on or off). It follows
// every change — this tab, another tab, devtools — through subscribe(). Registered only when
// the host calls defineAnalyticsToggle(): importing the package stays side-effect free.
import type { Analytics, AnalyticsState } from './analytics';
import type { Reason } from './3-consent-gate';

type Bindable = Pick<Analytics, 'ready' | 'isEnabled' | 'setEnabled' | 'subscribe' | 'config'>;

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
};

/** Reasons the checkbox cannot change: it is shown disabled, with the reason. */
const LOCKED: readonly Reason[] = ['loading', 'automation', 'dev-build', 'embedder-policy', 'storage-unavailable'];

let ids = 0;

/**
 * Registers the element (once). Bind it with `el.analytics = instance`, or let it use the
 * devtools global named by its `global` attribute (default `rerunAnalytics`).
 */
export function defineAnalyticsToggle(tagName = 'rerun-analytics-toggle'): void {
  if (typeof customElements === 'undefined' || customElements.get(tagName)) return;

  class AnalyticsToggle extends HTMLElement {
    analytics: Bindable | undefined;
    #unsubscribe: (() => void) | undefined;
    #input: HTMLInputElement | undefined;
    #why: HTMLElement | undefined;

    connectedCallback() {
      if (!this.#input) this.#render();
      const analytics = this.analytics ?? ((globalThis as Record<string, unknown>)[this.getAttribute('global') ?? 'rerunAnalytics'] as Bindable | undefined);
      if (!analytics) return this.#show({ enabled: false, reason: 'loading' });
      this.analytics = analytics;
      this.#unsubscribe = analytics.subscribe((s) => this.#show(s));
      this.#show({ enabled: analytics.isEnabled(), reason: 'loading' });
      void analytics.ready.then(() => analytics.config()).then((c) => this.#show({ enabled: c.enabled, reason: c.reason as Reason }));
    }

    disconnectedCallback() {
      this.#unsubscribe?.();
    }

    #render() {
      const id = `rerun-analytics-toggle-${++ids}`;
      const label = document.createElement('label');
      const input = document.createElement('input');
      input.type = 'checkbox';
      input.setAttribute('aria-describedby', `${id}-why`);
      input.addEventListener('change', () => {
        const analytics = this.analytics;
        // Re-read afterwards: a click may not change the effective state (then no event comes).
        void analytics?.setEnabled(input.checked).then(() => analytics.config()).then((c) => this.#show({ enabled: c.enabled, reason: c.reason as Reason }));
      });
      const text = document.createElement('span');
      text.textContent = this.getAttribute('label') ?? 'Send anonymous usage data';
      label.append(input, ' ', text);
      const why = document.createElement('small');
      why.id = `${id}-why`;
      why.setAttribute('aria-live', 'polite');
      why.style.display = 'block';
      this.replaceChildren(label, why);
      this.#input = input;
      this.#why = why;
    }

    #show({ enabled, reason }: AnalyticsState | { enabled: boolean; reason: Reason }) {
      if (!this.#input || !this.#why) return;
      this.#input.checked = enabled;
      this.#input.disabled = LOCKED.includes(reason);
      this.#why.textContent = REASON_TEXT[reason] ?? reason;
      this.dataset.reason = reason;
    }
  }

  customElements.define(tagName, AnalyticsToggle);
}
