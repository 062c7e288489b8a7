/**
 * `npm run lab -- up [--storage-nodes N]|down|status`: bring a full persistent lab (namespaces,
 * tgtd, btrfs, XFS, N storage nodes and a PostgreSQL) up and leave it running, show what every state file records, or tear them down
 * (`down` spares labs of test runs still in progress unless given `--all`).
 */
import { SpawnCommandRunner } from '../../src/system/command-runner.js';
import { startLab } from './lab.js';
import { startPostgres } from './postgres.js';
import { isOwnerGone, isProcessAlive, labStateDir, listStates, type LabState } from './state.js';
import { teardownState } from './teardown.js';

const runner = new SpawnCommandRunner();

function describeState(s: LabState): string {
  const lines = [`${s.kind} ${s.runId}  created ${s.createdAt}  owner pid ${String(s.ownerPid)}${isOwnerGone(s) ? ' (gone)' : ''}${s.persistent ? '  persistent' : ''}`];
  const procs = s.processes.map((p) => `${String(p.pid)}${isProcessAlive(p.pid) ? '' : ' (dead)'}`);
  if (procs.length > 0) lines.push(`  processes: ${procs.join(', ')}`);
  for (const [key, value] of Object.entries(s.info)) {
    if (key === 'hosts' && Array.isArray(value)) {
      for (const h of value as { name: string; netns: string; address: string; initiatorName: string }[]) {
        lines.push(`  host ${h.name}: netns ${h.netns}  address ${h.address}  initiator ${h.initiatorName}`);
      }
    } else if (key === 'storageNodes' && Array.isArray(value)) {
      for (const n of value as { name: string; netns: string; address: string; filesystem: string; tgtdPid: number }[]) {
        lines.push(`  storage node ${n.name}: netns ${n.netns}  address ${n.address}  ${n.filesystem}  tgtd pid ${String(n.tgtdPid)}`);
      }
    } else {
      lines.push(`  ${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
    }
  }
  if (s.loops.length > 0) lines.push(`  loops: ${s.loops.map((l) => l.device).join(', ')}`);
  if (s.runDir !== null) lines.push(`  dir: ${s.runDir}`);
  return lines.join('\n');
}

async function up(storageNodes: number): Promise<void> {
  const lab = await startLab({ hosts: 2, storageNodes, persistent: true, runner });
  let pgUrl: string;
  try {
    pgUrl = (await startPostgres({ persistent: true, runner })).url;
  } catch (err) {
    await lab.stop();
    throw err;
  }
  console.log(`lab ${lab.runId} is up (state ${lab.stateFile})`);
  console.log(`  bridge ${lab.bridge}  ${lab.bridgeAddress}  subnet ${lab.subnet}`);
  for (const h of lab.hosts) console.log(`  host ${h.name}: netns ${h.netns}  address ${h.address}  initiator ${h.initiatorName}`);
  console.log(`  tgtd pid ${String(lab.tgtdPid)}: portal ${lab.portal} and ${lab.loopbackPortal}; manage with tgtadm -C ${String(lab.tgtdControlPort)} --lld iscsi ...`);
  console.log(`  target IQN prefix ${lab.iqnPrefix}`);
  console.log(`  btrfs ${lab.btrfsDir}`);
  console.log(`  xfs   ${lab.xfsDir}`);
  console.log(`  postgres ${pgUrl}`);
  for (const n of lab.storageNodes) {
    console.log(`  storage node ${n.name}: netns ${n.netns}  address ${n.address}  portal ${n.portal}  ${n.filesystem} at ${n.dataDir} (inside the node)  tgtd pid ${String(n.tgtdPid)}  state dir ${n.stateDir}`);
  }
  console.log(`  run a command as a host: ip netns exec ${lab.hosts[0]?.netns ?? '<netns>'} <cmd>`);
  const sn = lab.storageNodes[0];
  if (sn !== undefined) console.log(`  run a command as a storage node: nsenter --mount=${sn.mountHandle} --net=/run/netns/${sn.netns} --wd=${sn.nodeDir} tgtadm -C 0 --lld iscsi --op show --mode target`);
  console.log('tear down with: npm run lab -- down');
}

function status(): void {
  const states = listStates();
  if (states.length === 0) {
    console.log(`no labs recorded in ${labStateDir()}`);
    return;
  }
  for (const s of states) console.log(describeState(s));
}

/**
 * Tears down recorded labs. Labs whose creating process is still running (a test run in progress,
 * perhaps another developer's) are skipped unless `all` is set; `up` labs and crashed runs go.
 */
async function down(all: boolean): Promise<number> {
  const states = listStates();
  let failed = 0;
  let skipped = 0;
  for (const s of states) {
    if (!all && !s.persistent && !isOwnerGone(s)) {
      skipped++;
      console.log(`${s.kind} ${s.runId}: skipped, its test run (pid ${String(s.ownerPid)}) is still running; use \`down --all\` to remove it anyway`);
      continue;
    }
    const errors = await teardownState(s, runner);
    if (errors.length === 0) {
      console.log(`${s.kind} ${s.runId}: removed`);
    } else {
      failed++;
      console.error(`${s.kind} ${s.runId}: could not remove everything:\n  ${errors.join('\n  ')}`);
    }
  }
  if (states.length === skipped) console.log('nothing to tear down');
  return failed === 0 ? 0 : 1;
}

async function main(argv: readonly string[]): Promise<number> {
  const cmd = argv[0];
  switch (cmd) {
    case 'up': {
      const at = argv.indexOf('--storage-nodes');
      const count = at >= 0 ? Number(argv[at + 1]) : 0;
      if (!Number.isInteger(count) || count < 0) {
        console.error(`--storage-nodes wants a count, got ${JSON.stringify(argv[at + 1] ?? '')}`);
        return 2;
      }
      await up(count);
      return 0;
    }
    case 'status':
      status();
      return 0;
    case 'down':
      return down(argv.includes('--all'));
    default:
      console.error('usage: npm run lab -- up [--storage-nodes N] | status | down [--all]');
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
