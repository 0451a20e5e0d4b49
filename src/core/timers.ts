// The core's timers: one table of named deadlines (types.ts: TimerName says what each is for).
// A timer fires once, at the first fact at or after its deadline; the shell is asked to wake the
// core at the earliest one, and never while none is armed (no timers while idle).
import type { Step, TimerName } from './types.js';

/** Arms `name` to fire `ms` from now (replacing an earlier deadline). */
export function arm(c: Step, name: TimerName, ms: number): void {
  c.st.timers[name] = c.now + Math.max(1, ms);
}

/** Exponential backoff with ±50 % jitter: 3 s, 6 s, 12 s … at most 5 minutes. */
export function backoff(failures: number, random: number): number {
  const base = Math.min(300_000, 3000 * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.5 + random));
}

/** The timers due by now, disarmed, in the order of their deadlines. */
export function due(c: Step): TimerName[] {
  const fired = (Object.entries(c.st.timers) as [TimerName, number][]).filter(([, at]) => at <= c.now).sort((a, b) => a[1] - b[1]);
  for (const [name] of fired) delete c.st.timers[name];
  return fired.map(([name]) => name);
}

/** When to be woken: the earliest deadline, or never. */
export function nextWake(c: Step): number | undefined {
  const deadlines = Object.values(c.st.timers) as number[];
  return deadlines.length ? Math.min(...deadlines) : undefined;
}
