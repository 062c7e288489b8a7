#!/usr/bin/env node
// The full test run: system packages, typecheck, lint, build, then vitest. Extra arguments go to
// vitest (e.g. `node scripts/test.mjs test/lab`). The very last line printed is always
// `N passed, N failed` (plus `, N skipped` when tests were skipped); a failed typecheck, lint or
// build step counts as one failed test each. Exit code is non-zero when anything failed.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const extraArgs = process.argv.slice(2);

/** Runs a command with inherited output; resolves to its exit code (or 1 if it could not start). */
function run(cmd, args) {
  return new Promise((resolveRun) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
    child.on('error', (err) => {
      console.error(`test: could not run ${cmd}: ${err.message}`);
      resolveRun(1);
    });
    child.on('close', (code, signal) => resolveRun(code ?? (signal ? 1 : 0)));
  });
}

const stepFailures = [];

async function step(name, cmd, args) {
  console.log(`\n=== ${name}: ${[cmd, ...args].join(' ')}`);
  const code = await run(cmd, args);
  if (code !== 0) {
    console.error(`=== ${name} FAILED (exit code ${code})`);
    stepFailures.push(name);
  }
  return code === 0;
}

/** Counts from vitest's JSON report; a file that failed without a failing test counts as one failure. */
function countsFromReport(file) {
  const report = JSON.parse(readFileSync(file, 'utf8'));
  const passed = report.numPassedTests ?? 0;
  let failed = report.numFailedTests ?? 0;
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  const brokenFiles = [];
  for (const tr of report.testResults ?? []) {
    const failedInFile = (tr.assertionResults ?? []).filter((a) => a.status === 'failed').length;
    if (tr.status === 'failed' && failedInFile === 0) {
      failed += 1;
      brokenFiles.push(`${tr.name}: ${(tr.message ?? '').split('\n')[0]}`);
    }
  }
  return { passed, failed, skipped, brokenFiles, success: report.success };
}

async function main() {
  const installed = await step('install system packages', 'bash', [join(root, 'scripts', 'install-deps.sh')]);
  await step('typecheck', 'npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']);
  await step('lint', 'npx', ['eslint', '.']);
  await step('build', 'npm', ['run', 'build', '--silent']);

  let passed = 0;
  let failed = 0;
  let skipped = 0;
  if (installed) {
    const dir = mkdtempSync(join(tmpdir(), 'stowage-test-'));
    const jsonFile = join(dir, 'vitest.json');
    const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile=${jsonFile}`, ...extraArgs];
    console.log(`\n=== tests: npx ${args.join(' ')}`);
    const code = await run('npx', args);
    if (existsSync(jsonFile)) {
      const c = countsFromReport(jsonFile);
      passed = c.passed;
      failed = c.failed;
      skipped = c.skipped;
      for (const b of c.brokenFiles) console.error(`=== test file failed to run: ${b}`);
      if (code !== 0 && failed === 0) {
        console.error(`=== vitest exited with code ${code} although no test failed (unhandled error or setup failure)`);
        failed += 1;
      }
    } else {
      console.error(`=== vitest wrote no report (exit code ${code}): counting the run as failed`);
      failed += 1;
    }
    rmSync(dir, { recursive: true, force: true });
  } else {
    console.error('=== tests not run: system packages are missing');
  }

  failed += stepFailures.length;
  if (stepFailures.length > 0) console.error(`=== failed steps: ${stepFailures.join(', ')}`);
  const summary = `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
  process.stdout.write(`${summary}\n`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.stack : String(err));
    process.stdout.write('0 passed, 1 failed\n');
    process.exitCode = 1;
  },
);
