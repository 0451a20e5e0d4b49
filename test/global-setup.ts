// Starts the local capture endpoint for the browser tests: a real HTTP server on 127.0.0.1
// that decodes what posthog-js sends. No test ever reaches a real PostHog host.
import type { TestProject } from 'vitest/node';
import { startCaptureSink } from '../dev/capture-sink';

declare module 'vitest' {
  export interface ProvidedContext {
    sinkUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const sink = await startCaptureSink();
  project.provide('sinkUrl', sink.url);
  return () => sink.close();
}
