import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFilesystemUsage, parseSubvolumeShow } from './btrfs-parse.js';

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('parseSubvolumeShow on btrfs-progs 6.2 output', () => {
  it('reads a plain writable subvolume', () => {
    expect(parseSubvolumeShow(fixture('subvolume-show-volume.txt'))).toEqual({
      name: 'v1', uuid: 'f0d15901-b237-9748-8fc7-17d1e0ece5ef', subvolumeId: 256, readonly: false,
    });
  });

  it('reads a read-only snapshot with its parent UUID', () => {
    expect(parseSubvolumeShow(fixture('subvolume-show-readonly-snapshot.txt'))).toEqual({
      name: 's1', uuid: '91f7d444-a230-6a46-a3b3-7d9764c39955', parentUuid: 'f0d15901-b237-9748-8fc7-17d1e0ece5ef', subvolumeId: 257, readonly: true,
    });
  });

  it('returns undefined for an error message', () => {
    expect(parseSubvolumeShow('ERROR: Not a Btrfs subvolume: Invalid argument')).toBeUndefined();
  });
});

describe('parseFilesystemUsage', () => {
  it('reads size, used and estimated free bytes', () => {
    expect(parseFilesystemUsage(fixture('filesystem-usage-raw.txt'))).toEqual({ deviceSizeBytes: 3221225472, usedBytes: 360448, freeBytes: 2667577344 });
  });

  it('returns undefined when figures are missing', () => {
    expect(parseFilesystemUsage('nothing here')).toBeUndefined();
  });
});
