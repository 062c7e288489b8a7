/** What `btrfs subvolume show <path>` says about one subvolume. */
export interface SubvolumeInfo {
  readonly name: string;
  readonly uuid: string;
  /** UUID of the subvolume this one was snapshotted from; undefined for a plain subvolume. */
  readonly parentUuid?: string;
  readonly subvolumeId: number;
  readonly readonly: boolean;
}

function field(text: string, key: string): string | undefined {
  const re = new RegExp(`^\\s*${key.replace(/[()]/g, '\\$&')}:\\s*(.*?)\\s*$`, 'm');
  return re.exec(text)?.[1];
}

/** Parses `btrfs subvolume show` output (btrfs-progs 6.x); returns undefined when it is not one. */
export function parseSubvolumeShow(text: string): SubvolumeInfo | undefined {
  const name = field(text, 'Name');
  const uuid = field(text, 'UUID');
  const id = field(text, 'Subvolume ID');
  if (name === undefined || uuid === undefined || id === undefined || !/^\d+$/.test(id)) return undefined;
  const parent = field(text, 'Parent UUID');
  const flags = field(text, 'Flags') ?? '';
  return {
    name,
    uuid,
    ...(parent !== undefined && parent !== '-' ? { parentUuid: parent } : {}),
    subvolumeId: Number(id),
    readonly: flags.split(/[\s,]+/).includes('readonly'),
  };
}

/** Capacity figures of a btrfs filesystem in bytes. */
export interface FilesystemUsage {
  readonly deviceSizeBytes: number;
  readonly usedBytes: number;
  /** btrfs' own estimate of what can still be written (accounts for DUP metadata). */
  readonly freeBytes: number;
}

/** Parses `btrfs filesystem usage -b <path>`; returns undefined if a figure is missing. */
export function parseFilesystemUsage(text: string): FilesystemUsage | undefined {
  const num = (key: string): number | undefined => {
    const v = field(text, key);
    const m = v === undefined ? null : /^(\d+)/.exec(v);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  };
  const deviceSizeBytes = num('Device size');
  const usedBytes = num('Used');
  const freeBytes = num('Free (estimated)');
  if (deviceSizeBytes === undefined || usedBytes === undefined || freeBytes === undefined) return undefined;
  return { deviceSizeBytes, usedBytes, freeBytes };
}
