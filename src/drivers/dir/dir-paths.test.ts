import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newId } from '../../core/ids.js';
import { imagePath, isTempFileName, parseImageFileName, PROBE_TEMP_ID, resolveInside, sweepTempFiles, tempPath } from './dir-paths.js';

const DIR = '/srv/stowage/volumes';

describe('dir paths', () => {
  it('derives image paths from valid ids only', () => {
    const id = newId('volume');
    expect(imagePath(DIR, id, 'volume', 'raw')).toBe(`${DIR}/${id}.raw`);
    const snap = newId('snapshot');
    expect(imagePath(DIR, snap, 'snapshot', 'qcow2')).toBe(`${DIR}/${snap}.qcow2`);
    expect(() => imagePath(DIR, snap, 'volume', 'raw')).toThrow(/not a volume id/);
    expect(() => imagePath(DIR, id, 'volume', 'vmdk' as 'raw')).toThrow(/unknown image format/);
  });

  it('no input string yields a path outside the directory', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.constantFrom('../x', 'vol-../../etc', '..', '.', '/etc/passwd', 'a/../../b', '\0')), (name) => {
      let resolved: string | undefined;
      try {
        resolved = resolveInside(DIR, name);
      } catch (err) {
        expect(err).toMatchObject({ code: 'VALIDATION_FAILED' });
        return;
      }
      expect(path.dirname(resolved)).toBe(DIR);
    }));
    fc.assert(fc.property(fc.string(), (id) => {
      try {
        const p = imagePath(DIR, id, 'volume', 'raw');
        expect(p).toBe(`${DIR}/${id}.raw`);
        expect(id).toMatch(/^vol-[a-z2-7]{20}$/);
      } catch (err) {
        expect(err).toMatchObject({ code: 'VALIDATION_FAILED' });
      }
    }));
  });

  it('tells image, temp and foreign file names apart', () => {
    const id = newId('volume');
    expect(parseImageFileName(`${id}.qcow2`)).toEqual({ id, kind: 'volume', format: 'qcow2' });
    expect(parseImageFileName(`${newId('snapshot')}.raw`)?.kind).toBe('snapshot');
    for (const foreign of [`${id}.vmdk`, `${id}.raw.bak`, `.${id}.raw`, 'README', id, `x${id}.raw`]) expect(parseImageFileName(foreign), foreign).toBeUndefined();
    const tmp = path.basename(tempPath(DIR, id));
    expect(tmp).toMatch(new RegExp(`^\\.${id}\\.tmp-[0-9a-f]{16}$`));
    expect(isTempFileName(tmp)).toBe(true);
    expect(parseImageFileName(tmp)).toBeUndefined();
    expect(isTempFileName(path.basename(tempPath(DIR, PROBE_TEMP_ID)))).toBe(true);
    expect(isTempFileName(`${id}.raw`)).toBe(false);
    expect(() => tempPath(DIR, '../x')).toThrow(/not an image id/);
  });

  it('sweeps only old temp files, never images or files kept for running operations', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'stowage-sweep-'));
    try {
      const id = newId('volume');
      const old = tempPath(dir, id);
      const kept = tempPath(dir, id);
      const young = tempPath(dir, newId('snapshot'));
      const image = path.join(dir, `${id}.raw`);
      for (const f of [old, kept, young, image]) await writeFile(f, 'x');
      const past = new Date(Date.now() - 3_600_000);
      for (const f of [old, kept, image]) await utimes(f, past, past);
      expect(await sweepTempFiles(dir, { keep: new Set([kept]) })).toEqual([path.basename(old)]);
      expect((await readdir(dir)).sort()).toEqual([path.basename(kept), path.basename(young), `${id}.raw`].sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
