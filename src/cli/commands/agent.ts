import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { StowageError } from '../../core/errors.js';
import type { CliContext, GlobalOptions } from '../context.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** `stowage agent`: the host agent that connects volumes into this host's VMs. */
export function register(program: Command, ctx: CliContext): void {
  program.command('agent')
    .description('Run the host agent: report this host and its VMs, connect and hot-plug the volumes attached to them')
    .requiredOption('--host <name>', 'this host\'s name in Stowage (registered on first report)')
    .requiredOption('--vm-dir <dir>', 'directory of VM QMP sockets, one <vm-name>.qmp per VM')
    .option('--initiator-name <iqn>', 'iSCSI initiator name of this host (default: derived from the hostname)')
    .option('--address <ip>', 'address storage sees this host come from (repeatable; default: every non-loopback address)', collect, [])
    .option('--file-root <dir>', 'directory local file volumes may be attached from (repeatable)', collect, [])
    .option('--heartbeat <ms>', 'first heartbeat interval in ms (then the server\'s)', '2000')
    .option('--enroll <token>', 'one-time enrollment token (`stowage host enroll HOST` prints it); needed on the first run only')
    .option('--enroll-file <file>', 'read the enrollment token from this file instead')
    .option('--state-dir <dir>', 'where the agent keeps its own credential and the API pin (0600)', '/var/lib/stowage/agent')
    .option('--log-level <level>', 'fatal|error|warn|info|debug', 'info')
    .addHelpText('after', `
Enrollment: \`stowage host create\` or \`stowage host enroll HOST\` prints a one-time token. The first
run exchanges it for the agent's own credential, which may only report for this host and read its
own grants; it is saved with the API's certificate pin in --state-dir, so later runs need no
--enroll. The token carries that pin: the agent refuses an API showing another certificate.

The agent keeps no volume state of its own: every heartbeat it reads what is really plugged into each VM
(QMP query-block), reports it, and converges to what the control plane wants. A restarted agent
never detaches what should stay attached; with the control plane unreachable it changes nothing.

Examples:
  $ stowage agent --host hv1 --api https://10.0.0.1:8750 --enroll stw1.agent.… --vm-dir /run/stowage/vms
  $ stowage agent --host hv1 --vm-dir /run/stowage/vms      # later runs: the saved credential
  $ ip netns exec host-a stowage agent --host host-a --vm-dir /tmp/lab/vms --address 10.99.0.2 \\
      --initiator-name iqn.2024-01.lab.client:host-a --file-root /srv/stowage/volumes
`)
    .action(async (opts: { host: string; vmDir: string; initiatorName?: string; address: string[]; fileRoot: string[]; heartbeat: string; logLevel: string; enroll?: string; enrollFile?: string; stateDir: string }, cmd: Command) => {
      if (opts.enroll && opts.enrollFile) throw new StowageError('VALIDATION_FAILED', 'pass --enroll or --enroll-file, not both');
      let enrollToken = opts.enroll;
      if (opts.enrollFile) {
        try {
          enrollToken = readFileSync(opts.enrollFile, 'utf8').trim();
        } catch (err) {
          throw new StowageError('VALIDATION_FAILED', `cannot read the enrollment token file ${opts.enrollFile}: ${(err as Error).message}`);
        }
      }
      const apiUrl = cmd.optsWithGlobals<GlobalOptions>().api ?? ctx.env.STOWAGE_URL;
      const { runAgent } = await import('../../agent/run-agent.js');
      await runAgent({
        host: opts.host, apiUrl, enrollToken, stateDir: opts.stateDir, vmDir: opts.vmDir, addresses: opts.address, fileRoots: opts.fileRoot,
        heartbeatMs: Number(opts.heartbeat), logLevel: opts.logLevel, ...(opts.initiatorName ? { initiatorName: opts.initiatorName } : {}),
      });
    });
}
