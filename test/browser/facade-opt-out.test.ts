// The startup facade's own opt-out (src/opt-out.ts), made while the stages' chunk is not there
// (still loading, a 404 after a deploy, a policy-off page): it ends what was recorded before it in
// every tab, as the stages' opt-out does (a cut, through the storage contract's journal), and it is
// never replayed later over a newer choice of the user's.
import { describe, expect, test } from 'vitest';
import type { RouteSpec } from '../page-commands';
import { appPages, configOf, evalIn, newKey, received, sleep, storedConfig, waitFor } from './helpers';

const { app } = appPages();

const STAGES_GLOB = '**/src/core.ts*';
const STAGES_404: RouteSpec[] = [{ pattern: STAGES_GLOB, action: 'notfound' }];
/** Stages 3 s late (a slow link): what must come first takes well under that (a precondition says so). */
const STAGES_LATE: RouteSpec[] = [{ pattern: STAGES_GLOB, action: 'delay' }];
const stagesMissing = (page: string) => evalIn(page, `analytics.details().startsWith('The disclosure is loading')`) as Promise<boolean>;
const journaled = () => Object.keys(localStorage).filter((k) => k.startsWith('rerun-analytics:change:'));
type Audit = { name: string; outcome: string; reason?: string }[];

describe('the facade\'s opt-out', () => {
  test('ends what came before it: B records 3 (its stages late); A (stages 404) opts out; C opts in; B\'s stages come: none of the 3 arrive', async () => {
    const key = newKey('facade_cut');
    const b = await app(key, '&toggle=0', undefined, STAGES_LATE);
    await evalIn(b, `for (let i = 0; i < 3; i++) analytics.record('help-button-clicked'); 0`); // kept by the facade, judged once the stages come
    expect(await stagesMissing(b), 'precondition: B\'s stages are not there').toBe(true);

    const a = await app(key, '&toggle=0', undefined, STAGES_404);
    await evalIn(a, 'analytics.setEnabled(false)'); // journaled by the facade, after B recorded
    expect(await stagesMissing(a), 'precondition: A\'s stages are not there').toBe(true);
    expect(journaled().length + ((await storedConfig())?.choice === 'disabled' ? 1 : 0), 'precondition: the opt-out is kept').toBeGreaterThan(0);

    const c = await app(key, '&toggle=0');
    await evalIn(c, 'analytics.setEnabled(true)'); // the user changes their mind: from now on, new events may go
    expect((await storedConfig())?.choice, 'precondition: the opt-in is stored').toBe('enabled');
    expect(await stagesMissing(b), 'precondition: B\'s stages are still not there').toBe(true);

    await waitFor(() => stagesMissing(b), (missing) => !missing, 15_000);
    await evalIn(b, 'analytics.ready.then(() => analytics.flush())');
    await sleep(1500);
    await evalIn(b, 'analytics.flush()');
    const audit = [...((await evalIn(b, 'analytics.audit()')) as Audit), ...((await evalIn(c, 'analytics.audit()')) as Audit)].filter((e) => e.name === 'help-button-clicked');
    expect((await received(key)).events.filter((e) => e.event === 'help-button-clicked'), `recorded before A's opt-out; B's and C's audits: ${JSON.stringify(audit.map((e) => `${e.outcome}:${e.reason ?? ''}`))}`).toHaveLength(0);
    expect(audit.map((e) => e.reason)).toEqual(['recorded before the last opt-out or clear', 'recorded before the last opt-out or clear', 'recorded before the last opt-out or clear']);
  }, 60_000);

  test('is not replayed over a newer choice: A (stages late) opts out; C opts in; when A\'s stages come, the stored choice is still C\'s', async () => {
    const key = newKey('facade_replay');
    const c = await app(key, '&toggle=0');
    await evalIn(c, 'analytics.ready');
    const a = await app(key, '&toggle=0', undefined, STAGES_LATE);
    await evalIn(a, 'analytics.setEnabled(false)');
    expect(await stagesMissing(a), 'precondition: A\'s stages are not there').toBe(true);
    await waitFor(() => configOf(c), (x) => x.reason === 'user-opted-out'); // C heard it
    await waitFor(storedConfig, (x) => x?.choice === 'disabled'); // and stored it, from the journal
    await evalIn(c, 'analytics.setEnabled(true)'); // the user's latest choice
    expect((await storedConfig())?.choice, 'precondition: the opt-in is stored').toBe('enabled');
    expect(await stagesMissing(a), 'precondition: A\'s stages are still not there').toBe(true);

    await waitFor(() => stagesMissing(a), (missing) => !missing, 15_000);
    await evalIn(a, 'analytics.config()');
    await sleep(1000);
    expect((await storedConfig())?.choice, 'stored choice after A\'s stages came').toBe('enabled');
    expect((await configOf(c)).reason, 'tab C').toBe('user-opted-in');
    expect((await configOf(a)).reason, 'tab A').toBe('user-opted-in');
  }, 60_000);
});
