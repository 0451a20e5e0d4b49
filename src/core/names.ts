// The storage contract's names (contract.ts says what each holds): in a module of their own, so
// that the startup facade, which needs a few of them (its opt-out), carries nothing else of it.

export const DB_NAME = 'rerun-analytics';
/** 1: config only; 2: + outbox (a record per event); 3: + its uuid index (a record per write); 4: + events. */
export const DB_VERSION = 4;
export const CONFIG = 'config';
export const EVENTS = 'events';
export const LEGACY_OUTBOX = 'outbox';
export const CONFIG_KEY = 'config';
export const SIZE_KEY = 'events-size';
export const MARK = 'flight:';
export const NOT_BEFORE = 'not-before ';
/** The delivering tab's Web Lock (and lease) name, per endpoint: versions 2 and 3 used 'rerun-analytics-drain'. */
export const LOCK = 'rerun-analytics-drain/4';
export const JOURNAL_EVENTS = 'rerun-analytics:events:';
export const JOURNAL_CHANGE = 'rerun-analytics:change:';
export const CHANNEL = 'rerun-analytics';
