import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../lab/lab.js';

/** A tgt target with one LUN, open to every initiator address, optionally behind CHAP. */
export interface TestTarget {
  readonly tid: number;
  readonly iqn: string;
  readonly lunPath: string;
  readonly sizeBytes: number;
}

/** Creates target `tid` (`<lab iqn prefix>:<name>`) with LUN 1 on a sparse file; binds CHAP `user`/`password` when given. */
export async function addTarget(lab: Lab, opts: { tid: number; name: string; sizeBytes: number; chap?: { user: string; password: string } }): Promise<TestTarget> {
  const iqn = `${lab.iqnPrefix}:${opts.name}`;
  const lunPath = join(lab.runDir, `${opts.name}.img`);
  writeFileSync(lunPath, '');
  truncateSync(lunPath, opts.sizeBytes);
  const tid = String(opts.tid);
  await lab.tgtadm(['--op', 'new', '--mode', 'target', '--tid', tid, '-T', iqn]);
  await lab.tgtadm(['--op', 'new', '--mode', 'logicalunit', '--tid', tid, '--lun', '1', '-b', lunPath]);
  await lab.tgtadm(['--op', 'bind', '--mode', 'target', '--tid', tid, '-I', 'ALL']);
  if (opts.chap !== undefined) {
    const { user, password } = opts.chap;
    await lab.tgtadm(['--op', 'new', '--mode', 'account', '--user', user, '--password', password], { secrets: [password] });
    await lab.tgtadm(['--op', 'bind', '--mode', 'account', '--tid', tid, '--user', user]);
  }
  return { tid: opts.tid, iqn, lunPath, sizeBytes: opts.sizeBytes };
}
