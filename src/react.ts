// <rerun-analytics-toggle> in React 19's TSX. React keeps JSX in its own module, so the
// declaration lives here, apart, for projects that have React's types; once, anywhere:
//   import type {} from 're-analytics-web/react';
// React 19 sets `analytics` as a property of the element (it has one), so it binds the instance.
import type { DetailedHTMLProps, HTMLAttributes } from 'react';
import type { AnalyticsToggleElement } from './toggle-element.js';
import type { Bindable } from './toggle-view.js';

export type AnalyticsToggleProps = DetailedHTMLProps<HTMLAttributes<AnalyticsToggleElement>, AnalyticsToggleElement> & {
  analytics?: Bindable | undefined;
  /** The checkbox's label. Default "Send anonymous usage data". */
  label?: string;
  /** The devtools global to bind to when `analytics` is unset. Default "rerunAnalytics". */
  global?: string;
};

declare module 'react' {
  namespace JSX {
    interface IntrinsicElements {
      'rerun-analytics-toggle': AnalyticsToggleProps;
    }
  }
}
