// createAnalytics() options. A programmer error here is the one place the module throws
// (a TypeError at the call), so a typo like `forse: true` is caught in development, not
// silently ignored in production.
import type { Catalog, EventSpec, PropSpec } from './catalog.js';
import { safeString } from './plain.js';
import { BUILT_IN_EVENTS, MODULE_OWNED, RESERVED_PROPERTIES, UNSAFE_NAMES, type ReservedEventName, type ReservedProperty } from './reserved.js';

export interface AnalyticsOptions<E extends Catalog = Catalog> {
  /** PostHog project API key (`phc_…`). Required. */
  projectKey: string;
  /** Where events go. Default: PostHog EU cloud. */
  apiHost?: string;
  /** Sent as `app_env` on events whose catalog entry has it. Default 'web_viewer'. */
  appEnv?: string;
  /** How long recorded events wait in the outbox before they are sent. Default 2000 ms. */
  flushIntervalMs?: number;
  /** Entries the audit ring buffer keeps. Default 200. */
  auditCapacity?: number;
  /** Name of the devtools global; false for none. Default 'rerunAnalytics'. */
  globalName?: string | false;
  /** Global Privacy Control / Do Not Track turn it off unless the user enabled it. Default true. */
  respectPrivacySignals?: boolean;
  /** The host says this is a dev build: off unless `force`. Default false. */
  devBuild?: boolean;
  /**
   * 'off': the page embedding the viewer forbids analytics (as does a
   * `<meta name="rerun-analytics" content="off">` in the document). Default 'allow'.
   */
  embedderPolicy?: 'allow' | 'off';
  /** Ignore automation / dev-build gating. Never overrides a user's opt-out or an embedder policy. */
  force?: boolean;
  /**
   * Like native: nothing is sent during the very first page load of a new anonymous id; its
   * events wait in the outbox and leave on the next visit, unless the user opts out. Default false.
   */
  firstRunGrace?: boolean;
  /**
   * More events, declared like the catalog's (Append only: person properties are the audited
   * catalog's alone). They are validated, allow-listed and disclosed exactly like built-in ones.
   */
  events?: E & HostEvents<E>;
}

/**
 * What a host may declare, as a type: Append events only, no built-in, `$` or empty name, no
 * reserved or module-owned property. A declaration the runtime would refuse does not compile.
 */
export type HostEvents<E> = {
  [K in keyof E]: K extends ReservedEventName ? never : { kind: 'Append'; why: string; props: HostProps<E[K]> };
};
type HostProps<S> = S extends { props: infer P } ? { [K in keyof P]: K extends ReservedProperty ? never : PropSpec } : Record<string, PropSpec>;

export type ResolvedOptions = Required<Omit<AnalyticsOptions, 'events'>> & { events: Catalog };

export const DEFAULTS: Omit<ResolvedOptions, 'projectKey'> = {
  apiHost: 'https://eu.i.posthog.com',
  appEnv: 'web_viewer',
  flushIntervalMs: 2000,
  auditCapacity: 200,
  globalName: 'rerunAnalytics',
  respectPrivacySignals: true,
  devBuild: false,
  embedderPolicy: 'allow',
  force: false,
  firstRunGrace: false,
  events: {},
};

export function resolveOptions(options: AnalyticsOptions): ResolvedOptions {
  try {
    return resolve(options);
  } catch (err) {
    // Options that cannot even be read (a throwing getter, a hostile proxy): still a TypeError here.
    if (err instanceof TypeError && err.message.startsWith('createAnalytics: ')) throw err;
    return fail(`options could not be read (${safeString(err).slice(0, 100)})`);
  }
}

function resolve(options: AnalyticsOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options must be an object');
  for (const key of Object.keys(options)) {
    if (key !== 'projectKey' && !Object.hasOwn(DEFAULTS, key)) fail(`unknown option "${key}"`);
  }
  const o = { ...DEFAULTS, ...stripUndefined(options) } as ResolvedOptions;
  if (typeof o.projectKey !== 'string' || !o.projectKey.trim()) fail('projectKey is required (your PostHog project API key)');
  let host: URL | undefined;
  try {
    host = new URL(o.apiHost);
  } catch {
    // reported below
  }
  if (!host || (host.protocol !== 'https:' && host.protocol !== 'http:') || typeof o.apiHost !== 'string') {
    fail(`apiHost must be an http(s) URL, got ${JSON.stringify(o.apiHost)}`);
  }
  o.apiHost = o.apiHost.replace(/\/+$/, '');
  if (typeof o.appEnv !== 'string' || !o.appEnv) fail('appEnv must be a non-empty string');
  if (typeof o.flushIntervalMs !== 'number' || !(o.flushIntervalMs > 0) || !Number.isFinite(o.flushIntervalMs)) {
    fail(`flushIntervalMs must be a positive number, got ${shown(o.flushIntervalMs)}`);
  }
  if (!Number.isSafeInteger(o.auditCapacity) || o.auditCapacity <= 0) fail(`auditCapacity must be a positive integer, got ${shown(o.auditCapacity)}`);
  if (o.globalName !== false && (typeof o.globalName !== 'string' || !o.globalName)) fail('globalName must be a non-empty string or false');
  for (const key of ['respectPrivacySignals', 'devBuild', 'force', 'firstRunGrace'] as const) {
    if (typeof o[key] !== 'boolean') fail(`${key} must be a boolean`);
  }
  if (o.embedderPolicy !== 'allow' && o.embedderPolicy !== 'off') fail(`embedderPolicy must be 'allow' or 'off'`);
  o.events = checkEvents(o.events);
  return o;
}

const SPEC = /^(string|integer|float|bool)\??$/;

/**
 * Checks the host's declarations and returns a frozen copy: what was checked is what is used,
 * whatever the host does to its object afterwards (adding `$current_url` to a spec's props…).
 */
function checkEvents(events: unknown): Catalog {
  if (typeof events !== 'object' || events === null || Array.isArray(events)) fail('events must be an object of event declarations');
  const copy: Record<string, EventSpec> = {};
  for (const [name, spec] of Object.entries(events as Record<string, Partial<Catalog[string]>>)) {
    if ((BUILT_IN_EVENTS as readonly string[]).includes(name)) fail(`event "${name}" is already in the built-in catalog`);
    if (!name || name.startsWith('$') || (UNSAFE_NAMES as readonly string[]).includes(name)) fail(`event name "${name}" is reserved`);
    if (spec?.kind !== 'Append') fail(`event "${name}": kind must be 'Append'`);
    if (typeof spec.why !== 'string' || !spec.why.trim()) fail(`event "${name}": say why it is collected ("why")`);
    if (typeof spec.props !== 'object' || spec.props === null) fail(`event "${name}": props must be an object`);
    const props: Record<string, PropSpec> = {};
    for (const [prop, type] of Object.entries(spec.props)) {
      if ((MODULE_OWNED as readonly string[]).includes(prop)) fail(`event "${name}": property "${prop}" is filled in by the module, not declared by the host`);
      if ((RESERVED_PROPERTIES as readonly string[]).includes(prop) || prop.startsWith('$')) fail(`event "${name}": property "${prop}" is reserved`);
      if (typeof type !== 'string' || !SPEC.test(type)) fail(`event "${name}": property "${prop}" has type ${JSON.stringify(type)}, not one of string, integer, float, bool (with ? if optional)`);
      props[prop] = type;
    }
    if (spec.derive !== undefined) fail(`event "${name}": derive is for the built-in catalog only`);
    copy[name] = Object.freeze({ kind: 'Append', why: spec.why, props: Object.freeze(props) });
  }
  return Object.freeze(copy);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A value as it was given: a string in quotes ('1000' is not 1000). */
function shown(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : safeString(value);
}

function fail(message: string): never {
  throw new TypeError(`createAnalytics: ${message}`);
}
