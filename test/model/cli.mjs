#!/usr/bin/env node
// `npm run model -- --runs N [--workers K] [--seed S]`: explores the model for longer than `npm test`
// does. N random runs of each property's kind (short runs, and a fifth as many long ones), split
// over K processes (default: one per core), each from a fresh random seed unless --seed is given.
// A failure prints its seed and counterexample; the exit code says whether every worker passed.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
const runs = Number(args.runs ?? 100_000);
const workers = Number(args.workers ?? availableParallelism());
const per = Math.ceil(runs / workers);
const started = Date.now();
console.log(`model: ${runs} short and ${Math.ceil(runs / 5)} long runs over ${workers} processes`);

const results = await Promise.all(
  Array.from({ length: workers }, (_, i) => {
    const seed = args.seed !== undefined ? Number(args.seed) + i : ((Date.now() ^ (Math.random() * 2 ** 31)) >>> 0) + i;
    const env = { ...process.env, MODEL_RUNS: String(per), MODEL_LONG_RUNS: String(Math.ceil(per / 5)), MODEL_SEED: String(seed) };
    return new Promise((resolve) => {
      const child = spawn('npx', ['vitest', 'run', '-c', 'test/core.config.ts', 'test/node/model.test.ts', '-t', 'invariants'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('close', (code) => {
        const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
        console.log(`worker ${i} (seed ${seed}): ${code === 0 ? 'green' : 'FAILED'}`);
        if (code !== 0) console.log(plain.split('\n').filter((l) => /Counterexample|I\d:|replay with|Error/.test(l)).join('\n'));
        resolve(code === 0);
      });
    });
  }),
);
const ok = results.every(Boolean);
console.log(`model: ${ok ? 'all green' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(ok ? 0 : 1);
