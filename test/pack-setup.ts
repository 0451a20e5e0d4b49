// Node tests see the package as a consumer gets it: packed once per run (`npm pack`, which
// builds dist/) and unpacked into a host's node_modules (bench/host-size.ts).
import type { TestProject } from 'vitest/node';
import { unpackPackage } from '../bench/host-size';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A directory whose node_modules holds the unpacked package: code run or built there imports `re-analytics-web`. */
    hosts: string;
  }
}

export default async function setup(project: TestProject) {
  project.provide('hosts', await unpackPackage());
}
