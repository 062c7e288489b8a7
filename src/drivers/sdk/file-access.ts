import type { AccessPort, DataPort } from './ports.js';

/**
 * Access for a backend whose volumes are local files (dir, btrfs): the host opens the file at the
 * data port's path directly, so a grant only says where it is, and there are no ACLs to revoke or
 * list on the backend.
 */
export function fileAccessPort(data: DataPort): AccessPort {
  return {
    grant: (handle, grant) => Promise.resolve({ protocol: 'file', path: data.locate(handle).path, mode: grant.mode }),
    revoke: () => Promise.resolve(),
    list: () => Promise.resolve([]),
  };
}
