import type { Command } from 'commander';
import { StowageError } from '../../core/errors.js';
import { resolveClientConfig } from '../client-config.js';
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
    .option('--log-level <level>', 'fatal|error|warn|info|debug', 'info')
    .addHelpText('after', `
The agent keeps no state of its own: every heartbeat it reads what is really plugged into each VM
(QMP query-block), reports it, and converges to what the control plane wants. A restarted agent
never detaches what should stay attached; with the control plane unreachable it changes nothing.

Examples:
  $ stowage agent --host hv1 --api http://10.0.0.1:8750 --vm-dir /run/stowage/vms
  $ ip netns exec host-a stowage agent --host host-a --vm-dir /tmp/lab/vms --address 10.99.0.2 \\
      --initiator-name iqn.2024-01.lab.client:host-a --file-root /srv/stowage/volumes
`)
    .action(async (opts: { host: string; vmDir: string; initiatorName?: string; address: string[]; fileRoot: string[]; heartbeat: string; logLevel: string }, cmd: Command) => {
      const client = resolveClientConfig(cmd.optsWithGlobals<GlobalOptions>(), ctx.env);
      if (!client.token) throw new StowageError('UNAUTHORIZED', `no API token: pass --token, set STOWAGE_TOKEN, or write it to ${client.configPath}`);
      const { runAgent } = await import('../../agent/run-agent.js');
      await runAgent({
        host: opts.host, apiUrl: client.url, token: client.token, vmDir: opts.vmDir, addresses: opts.address, fileRoots: opts.fileRoot,
        heartbeatMs: Number(opts.heartbeat), logLevel: opts.logLevel, ...(opts.initiatorName ? { initiatorName: opts.initiatorName } : {}),
      });
    });
}
