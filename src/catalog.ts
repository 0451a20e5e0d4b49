// The event catalog: every event this module may send, every property it may carry, and why.
// This file is what a privacy reviewer reads. The same declarations drive the TypeScript types
// of record(), the runtime validator (2-validate.ts), the allow-list (5-allow-list.ts) and the
// disclosure text of details(). Anything not declared here is dropped before it can leave.
//
// Names and types match the native SDK's event list, so dashboards join both builds.
// Property types: 'string' | 'integer' | 'float' | 'bool'; a trailing '?' marks a property that
// is left out (never sent as null) when unknown.

import { hashed } from './hash.js';
import type { BUILT_IN_EVENTS, MODULE_OWNED } from './reserved.js';
import { isRecord } from './plain.js';

export type PropType = 'string' | 'integer' | 'float' | 'bool';
export type PropSpec = PropType | `${PropType}?`;
/** Append: an ordinary event. Identify: person properties as `$identify`. SetPersonProperties: `$set`. */
export type EventKind = 'Append' | 'Identify' | 'SetPersonProperties';

export interface EventSpec {
  kind: EventKind;
  /** One line on why this event is collected, shown to users by details(). */
  why: string;
  props: Readonly<Record<string, PropSpec>>;
  /** A rule applied to the values before they leave, as the native SDK applies it; shown by details(). */
  derive?: Derive;
}

export type Value = boolean | number | string;

export interface Derive {
  why: string;
  /** `prehashed`: the values come from the native SDK (recordNative), which hashes before serialising. */
  apply(props: Record<string, Value>, prehashed: boolean): Record<string, Value>;
}

export type Catalog = Readonly<Record<string, EventSpec>>;

/** Build information of the viewer: which build people run, so regressions can be traced. */
const BUILD_INFO = {
  features: 'string',
  git_hash: 'string',
  rerun_version: 'string',
  rust_version: 'string?',
  llvm_version: 'string?',
  target: 'string',
  build_date: 'string',
  debug: 'bool',
  rerun_workspace: 'bool',
} as const;

/**
 * Names users give their applications and recordings may say who they are or what they work
 * on: they are hashed. The project's own examples (application id starting with
 * "rerun_example") are sent in clear, and `app_id_starts_with_rerun_example` says which case.
 */
const USER_IDS: Derive = {
  why: 'application_id and recording_id are hashed unless the application id starts with "rerun_example" (the project\'s own examples)',
  apply(props, prehashed) {
    if (typeof props.application_id !== 'string') return props;
    const example = props.application_id.startsWith('rerun_example');
    // Native hashes before it serialises; a value that is not a hash is hashed here anyway.
    const hash = (v: Value | undefined) => (prehashed && typeof v === 'string' && /^[0-9a-f]{64}$/.test(v) ? v : hashed(String(v ?? '')));
    return example
      ? { ...props, app_id_starts_with_rerun_example: true }
      : { ...props, application_id: hash(props.application_id), recording_id: hash(props.recording_id), app_id_starts_with_rerun_example: false };
  },
};

/** Where the viewer runs: never a URL, only a hash of the root domain (see root-domain.ts). */
const LOCATION = {
  hashed_root_domain: 'string?',
  rerun_url: 'string?', // full URL only on the project's own domain (rerun.io)
} as const;

export const CATALOG = /* @__PURE__ */ deepFreeze({
  $identify: {
    kind: 'Identify',
    why: 'Ties the anonymous id to the build the person runs (versions, target) and the metadata they opted in to share.',
    props: { ...BUILD_INFO, python_version: 'string?' },
  },
  viewer_started: {
    kind: 'Append',
    why: 'Counts viewer starts and the graphics setups they run on, so rendering work goes where users are.',
    props: {
      app_env: 'string',
      ...LOCATION,
      is_docker: 'bool',
      is_wsl: 'bool',
      graphics_adapter_backend: 'string',
      re_renderer_device_tier: 'string',
      pixels_per_point: 'float',
      native_pixels_per_point: 'float?',
      zoom_factor: 'float',
    },
  },
  open_recording: {
    kind: 'Append',
    why: 'Counts opened recordings by source and SDK version; user application and recording ids are hashed.',
    props: {
      app_env: 'string',
      ...LOCATION,
      application_id: 'string',
      recording_id: 'string',
      store_source: 'string',
      store_version: 'string',
      rust_version: 'string?',
      llvm_version: 'string?',
      python_version: 'string?',
      app_id_starts_with_rerun_example: 'bool',
      data_source: 'string?',
    },
    derive: USER_IDS,
  },
  load_data_source: {
    kind: 'Append',
    why: 'Shows which kinds of data sources people load and whether loading starts, to find broken loaders.',
    props: {
      source_type: 'string',
      file_extension: 'string?',
      file_source: 'string?',
      catalog_kind: 'string?',
      started_successfully: 'bool',
    },
  },
  'settings-opened': {
    kind: 'Append',
    why: 'Counts how often the settings panel is opened.',
    props: {},
  },
  'help-button-clicked': {
    kind: 'Append',
    why: 'Shows whether the help button is found (the viewer sends it the first time only).',
    props: {},
  },
  welcome_navigation: {
    kind: 'Append',
    why: 'Shows which welcome-screen cards people follow, to improve the first steps.',
    props: {
      card_type: 'string',
      destination: 'string',
      cta_cloud: 'bool',
      is_logged_in: 'bool',
      has_server: 'bool',
      rerun_version: 'string',
    },
  },
  'crash-panic': {
    kind: 'Append',
    why: 'Reports viewer crashes with an anonymised call stack, so they can be fixed.',
    props: { ...BUILD_INFO, callstack: 'string', message: 'string?', file_line: 'string?' },
  },
  $set: {
    kind: 'SetPersonProperties',
    why: 'Links the person to their account, only after they explicitly log in.',
    props: { email: 'string', organization_id: 'string' },
  },
} as const satisfies Catalog);

export type CatalogEventName = keyof typeof CATALOG;

// The startup chunk checks host events against reserved.ts's list of names: keep both equal.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const namesMatch: Same<CatalogEventName, (typeof BUILT_IN_EVENTS)[number]> = true;
void namesMatch;
export type BuiltInCatalog = typeof CATALOG;

type JsType<S> = S extends `string${string}` ? string : S extends `bool${string}` ? boolean : number;
type RequiredKeys<P> = { [K in keyof P]: P[K] extends `${string}?` ? never : K }[keyof P];
type OptionalKeys<P> = Exclude<keyof P, RequiredKeys<P>>;
type PropsFrom<P> = { [K in RequiredKeys<P>]: JsType<P[K]> } & { [K in OptionalKeys<P>]?: JsType<P[K]> | null };
/** The properties record() takes for an event. Properties the module fills in itself may be left out. */
export type PropsFor<S extends EventSpec> = [keyof S['props']] extends [never]
  ? Record<string, never> // an event without properties takes none (`{}` would take anything)
  : Omit<PropsFrom<S['props']>, AutoFilled> & Partial<Pick<PropsFrom<S['props']>, AutoFilled & keyof PropsFrom<S['props']>>>;
export type PropsOf<N extends CatalogEventName> = PropsFor<BuiltInCatalog[N]>;

/** Properties a caller may leave out: the module's own, and those a `derive` rule sets. */
export type AutoFilled = (typeof MODULE_OWNED)[number] | 'app_id_starts_with_rerun_example';

/** Frozen all the way down: the audited catalog cannot be edited at run time (it is exported). */
function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** Parses a spec like 'float?' into its type and optional-ness. */
export function parseSpec(spec: PropSpec): { type: PropType; optional: boolean } {
  const optional = spec.endsWith('?');
  return { type: (optional ? spec.slice(0, -1) : spec) as PropType, optional };
}

const NATIVE_TAGS: Readonly<Record<string, PropType>> = { String: 'string', Integer: 'integer', Float: 'float', Bool: 'bool' };

/** Reads a value in the native serde shape (`{"Float": 1.0}`); undefined for anything else. */
export function unwrapNative(v: unknown): { type: PropType; value: unknown } | undefined {
  const entries = isRecord(v) ? Object.entries(v) : [];
  const type = entries.length === 1 && Object.hasOwn(NATIVE_TAGS, entries[0]![0]) ? NATIVE_TAGS[entries[0]![0]] : undefined;
  return type ? { type, value: entries[0]![1] } : undefined;
}
