import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { StowageError } from '../core/errors.js';

/** Socket files the directory holds: `<vmname>.qmp`. */
export const QMP_SOCKET_SUFFIX = '.qmp';

const VM_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** The VM name of a directory entry `<vmname>.qmp`, or undefined for anything else (including unsafe names). */
export function vmNameFromFileName(fileName: string): string | undefined {
  if (!fileName.endsWith(QMP_SOCKET_SUFFIX)) return undefined;
  const name = fileName.slice(0, -QMP_SOCKET_SUFFIX.length);
  return VM_NAME_RE.test(name) && !name.includes('..') ? name : undefined;
}

/**
 * Finds the VMs of this host from a directory of QMP sockets, one `<vmname>.qmp` per VM (where
 * libvirt hooks or the VM launcher put them). Only unix sockets directly inside the directory count.
 */
export class VmDirectory {
  readonly dir: string;

  constructor(dir: string) {
    if (!path.isAbsolute(dir)) throw new StowageError('VALIDATION_FAILED', `agent: VM socket directory ${JSON.stringify(dir)} must be absolute`, { dir });
    this.dir = path.resolve(dir);
  }

  /** Every VM with a live-looking socket: name → socket path, sorted by name. Throws BACKEND_UNAVAILABLE when the directory cannot be read. */
  async list(): Promise<Map<string, string>> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      throw new StowageError('BACKEND_UNAVAILABLE', `agent: cannot read the VM socket directory ${this.dir}: ${err instanceof Error ? err.message : String(err)}`, { dir: this.dir }, { cause: err });
    }
    const found: [string, string][] = [];
    for (const entry of entries.sort()) {
      const name = vmNameFromFileName(entry);
      if (name === undefined) continue;
      const socketPath = this.resolveInside(entry);
      const st = await lstat(socketPath).catch(() => undefined);
      if (st?.isSocket() === true) found.push([name, socketPath]);
    }
    return new Map(found);
  }

  /** The socket path of VM `name`; throws NOT_FOUND when there is no such socket, VALIDATION_FAILED on a bad name. */
  async socketFor(name: string): Promise<string> {
    if (vmNameFromFileName(`${name}${QMP_SOCKET_SUFFIX}`) !== name) {
      throw new StowageError('VALIDATION_FAILED', `agent: ${JSON.stringify(name)} is not a valid VM name`, { vm: name });
    }
    const socketPath = this.resolveInside(`${name}${QMP_SOCKET_SUFFIX}`);
    const st = await lstat(socketPath).catch(() => undefined);
    if (st?.isSocket() !== true) throw new StowageError('NOT_FOUND', `agent: no VM ${name} (no QMP socket ${socketPath})`, { vm: name });
    return socketPath;
  }

  private resolveInside(entry: string): string {
    const full = path.resolve(this.dir, entry);
    if (path.dirname(full) !== this.dir) throw new StowageError('VALIDATION_FAILED', `agent: ${JSON.stringify(entry)} escapes ${this.dir}`, { entry });
    return full;
  }
}
