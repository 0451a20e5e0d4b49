// <rerun-analytics-toggle>: the settings panel's switch (a labelled native checkbox and a line
// saying why it is on or off; toggle-view.ts draws it, fetched when the first one is shown).
// Registered only when the host calls defineAnalyticsToggle(): importing the package stays
// side-effect free. Any order works: the element may be connected, bound, or defined first.
import type { Bindable } from './toggle-view.js';

/** Dispatched on `globalThis` when createAnalytics() sets its devtools global: unbound toggles bind to it then. */
export const CREATED_EVENT = 'rerun-analytics-created';

export interface AnalyticsToggleElement extends HTMLElement {
  /**
   * The instance shown. Unset: the devtools global named by the `global` attribute (default
   * `rerunAnalytics`), as soon as there is one. Setting it again re-binds the element.
   */
  analytics: Bindable | undefined;
}

declare global {
  interface HTMLElementTagNameMap {
    'rerun-analytics-toggle': AnalyticsToggleElement;
  }
}

/** Registers the element (once). Bind it with `el.analytics = instance`, or let it find the devtools global. */
export function defineAnalyticsToggle(tagName = 'rerun-analytics-toggle'): void {
  if (typeof customElements === 'undefined' || customElements.get(tagName)) return;
  customElements.define(
    tagName,
    class extends HTMLElement implements AnalyticsToggleElement {
      #analytics: Bindable | undefined;
      #unmount: (() => void) | undefined;
      #drawn = 0;
      constructor() {
        super();
        // Set before the element was defined (an upgrade): an own property hides the accessor.
        if (Object.hasOwn(this, 'analytics')) {
          const early = (this as { analytics?: Bindable }).analytics;
          delete (this as { analytics?: Bindable }).analytics;
          this.#analytics = early;
        }
      }
      get analytics() {
        return this.#analytics;
      }
      set analytics(analytics: Bindable | undefined) {
        this.#analytics = analytics;
        if (this.isConnected) this.#draw();
      }
      static observedAttributes = ['global', 'label'];
      attributeChangedCallback() {
        if (this.isConnected) this.#draw();
      }
      connectedCallback() {
        this.#draw();
      }
      disconnectedCallback() {
        this.#drawn++;
        this.#unbind();
      }
      #unbind() {
        this.#unmount?.();
        this.#unmount = undefined;
      }
      #draw() {
        const drawn = ++this.#drawn;
        this.#unbind();
        void import('./toggle-view.js').then(({ mount }) => {
          if (drawn === this.#drawn && this.isConnected) this.#unmount = mount(this, this.#analytics, () => this.isConnected && this.#draw());
        });
      }
    },
  );
}
