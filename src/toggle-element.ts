// <rerun-analytics-toggle>: the settings panel's switch (a labelled native checkbox and a line
// saying why it is on or off; toggle-view.ts draws it, fetched when the first one is shown).
// Registered only when the host calls defineAnalyticsToggle(): importing the package stays
// side-effect free.
import type { Bindable } from './toggle-view.js';

/**
 * Registers the element (once). Bind it with `el.analytics = instance`, or let it use the
 * devtools global named by its `global` attribute (default `rerunAnalytics`).
 */
export function defineAnalyticsToggle(tagName = 'rerun-analytics-toggle'): void {
  if (typeof customElements === 'undefined' || customElements.get(tagName)) return;
  customElements.define(
    tagName,
    class extends HTMLElement {
      analytics: Bindable | undefined;
      #unmount: (() => void) | undefined;
      #shown = 0;
      connectedCallback() {
        const shown = ++this.#shown;
        void import('./toggle-view.js').then(({ mount }) => {
          if (shown === this.#shown && this.isConnected) this.#unmount = mount(this);
        });
      }
      disconnectedCallback() {
        this.#shown++;
        this.#unmount?.();
        this.#unmount = undefined;
      }
    },
  );
}
