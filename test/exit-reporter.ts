// A safety net for CI: one run passed every test, then never exited (Chromium left open, the
// Vite server with it), until killed. Once the run has ended, the process has a minute to exit
// on its own; past that it is ended, with the run's result as its exit code.
import type { Reporter, TestRunEndReason } from 'vitest/node';

export default class ExitWhenDone implements Reporter {
  onTestRunEnd(_modules: unknown, errors: readonly unknown[], reason: TestRunEndReason): void {
    const code = reason === 'passed' && errors.length === 0 ? 0 : 1;
    setTimeout(() => {
      // What still holds the process, for whoever finds the cause (e.g. "TCPSocketWrap ×3, Timeout ×1").
      const held = Object.entries(process.getActiveResourcesInfo().reduce<Record<string, number>>((n, r) => ((n[r] = (n[r] ?? 0) + 1), n), {}));
      console.warn(`vitest had not exited a minute after the run ended: ending it (exit code ${code}). Still open: ${held.map(([r, n]) => `${r} ×${n}`).join(', ')}.`);
      process.exit(code);
    }, 60_000).unref();
  }
}
