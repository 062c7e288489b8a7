import { StowageError } from '../core/errors.js';
import type { VolumeFormat } from '../core/states.js';
import type { CommandRunner } from './command-runner.js';

/** The facts Stowage needs from `qemu-img info --output=json`. */
export interface QemuImgInfo {
  readonly format: string;
  readonly virtualSizeBytes: number;
  readonly actualSizeBytes?: number;
  /** The backing file exactly as recorded in the image (relative names are relative to the image). */
  readonly backingFile?: string;
  readonly backingFormat?: string;
}

function field(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/**
 * Parses the JSON printed by `qemu-img info --output=json <file>` (one image, no --backing-chain).
 * Throws DRIVER_FAILED when the text is not such an object.
 */
export function parseQemuImgInfo(text: string): QemuImgInfo {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StowageError('DRIVER_FAILED', `qemu-img info printed something that is not JSON: ${text.slice(0, 200)}`, {}, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new StowageError('DRIVER_FAILED', 'qemu-img info did not print a JSON object', {});
  }
  const obj = parsed as Record<string, unknown>;
  const format = field(obj, 'format');
  const virtualSize = field(obj, 'virtual-size');
  if (typeof format !== 'string' || typeof virtualSize !== 'number' || !Number.isSafeInteger(virtualSize) || virtualSize < 0) {
    throw new StowageError('DRIVER_FAILED', 'qemu-img info output lacks "format" or "virtual-size"', {});
  }
  const actual = field(obj, 'actual-size');
  const backing = field(obj, 'backing-filename');
  const backingFormat = field(obj, 'backing-filename-format');
  return {
    format,
    virtualSizeBytes: virtualSize,
    ...(typeof actual === 'number' ? { actualSizeBytes: actual } : {}),
    ...(typeof backing === 'string' && backing !== '' ? { backingFile: backing } : {}),
    ...(typeof backingFormat === 'string' ? { backingFormat } : {}),
  };
}

/** Timeout for metadata-only qemu-img commands (info, create, resize). */
export const QEMU_IMG_META_TIMEOUT_MS = 60_000;

/** How long a runner's "qemu-img runs" is reused, from when the check answered. */
export const QEMU_IMG_AVAILABLE_FRESH_MS = 30_000;

/**
 * How long a runner's "qemu-img does not run" is reused: shorter, because a failed spawn may be
 * passing (EAGAIN, a package being upgraded) and it turns qcow2 off on every dir backend of the
 * runner at once, while checking again costs one spawn per 5 s however many backends ask.
 */
export const QEMU_IMG_MISSING_FRESH_MS = 5_000;

/**
 * One `qemu-img --version` run shared by every caller that asks while it is in flight, and its
 * answer for a while after. It runs under its own signal and timeout: a caller whose signal
 * aborts only stops waiting, and the run is cancelled (and forgotten) only when no caller waits.
 */
class AvailabilityCheck {
  private readonly stop = new AbortController();
  private waiters = 0;
  private answered: { readonly atMs: number; readonly available: boolean } | undefined;
  private readonly answer: Promise<boolean>;

  constructor(runner: CommandRunner, private readonly onAbandoned: () => void) {
    this.answer = runner.run('qemu-img', ['--version'], { timeoutMs: QEMU_IMG_META_TIMEOUT_MS, signal: this.stop.signal })
      .then(() => true, () => false)
      .then((available) => {
        if (!this.stop.signal.aborted) this.answered = { atMs: Date.now(), available };
        return available;
      });
  }

  /** True while in flight, and until the answer is older than its freshness. */
  fresh(): boolean {
    const a = this.answered;
    if (!a) return !this.stop.signal.aborted;
    return Date.now() - a.atMs < (a.available ? QEMU_IMG_AVAILABLE_FRESH_MS : QEMU_IMG_MISSING_FRESH_MS);
  }

  /** The answer; rejects with `signal`'s reason if it aborts first. */
  async wait(signal: AbortSignal): Promise<boolean> {
    if (this.answered) return this.answered.available;
    signal.throwIfAborted();
    this.waiters++;
    let onAbort = (): void => undefined;
    try {
      return await new Promise<boolean>((resolve, reject) => {
        onAbort = (): void => { reject(signal.reason instanceof Error ? signal.reason : new Error('the qemu-img check was cancelled', { cause: signal.reason })); };
        signal.addEventListener('abort', onAbort, { once: true });
        this.answer.then(resolve, reject);
      });
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.waiters--;
      if (this.waiters === 0 && !this.answered) {
        this.stop.abort();
        this.onAbandoned();
      }
    }
  }
}

const availability = new WeakMap<CommandRunner, AvailabilityCheck>();

/**
 * Drops what `runner` remembers about qemu-img, so the next availability check runs it again (a
 * test holding a probe at that run; an operator's fresh install is seen within
 * QEMU_IMG_MISSING_FRESH_MS anyway).
 */
export function forgetQemuImgAvailability(runner: CommandRunner): void {
  availability.delete(runner);
}

/** Timeout for qemu-img commands that copy data (convert, rebase): long, cancellation is by signal. */
export const QEMU_IMG_COPY_TIMEOUT_MS = 24 * 60 * 60 * 1000;

/** How `convert` copies, beyond source and destination. */
export interface ConvertOptions {
  /** Write into `dst` as it exists (`-n`: created beforehand, keeping its mode and size). */
  readonly targetExists?: boolean;
  /** Called with the fraction done (0..1) as qemu-img prints progress (`-p`). */
  readonly onProgress?: (fraction: number) => void;
  /** Overrides QEMU_IMG_COPY_TIMEOUT_MS. */
  readonly timeoutMs?: number;
}

/** The last `(NN.NN/100%)` in a chunk of `qemu-img convert -p` output, as a fraction. */
export function parseConvertProgress(chunk: string): number | undefined {
  const m = /\((\d+(?:\.\d+)?)\/100%\)[^(]*$/.exec(chunk);
  return m?.[1] ? Number(m[1]) / 100 : undefined;
}

/**
 * The one typed wrapper over qemu-img, for the dir driver and for host copies between backends.
 * Paths must be absolute (so qemu never reads a `proto:` prefix from them) and every call names the
 * format (no probing).
 */
export class QemuImg {
  constructor(private readonly runner: CommandRunner) {}

  /**
   * True when `qemu-img --version` runs. Every QemuImg on the same runner shares one check and its
   * answer (QEMU_IMG_AVAILABLE_FRESH_MS, or QEMU_IMG_MISSING_FRESH_MS when it failed): each dir
   * backend's probe asks, and a thousand backends on their shipped 30 s probe would otherwise spawn
   * 33 processes a second to learn one fact about this machine. Rejects with `signal`'s reason when
   * it aborts before the answer; that says nothing about qemu-img and other callers keep waiting.
   */
  available(signal: AbortSignal): Promise<boolean> {
    let check = availability.get(this.runner);
    if (!check?.fresh()) {
      const started: AvailabilityCheck = new AvailabilityCheck(this.runner, () => {
        if (availability.get(this.runner) === started) availability.delete(this.runner);
      });
      availability.set(this.runner, started);
      check = started;
    }
    return check.wait(signal);
  }

  /**
   * Reads image facts. `shareLocks` (-U) lets it read an image another process holds open; without it
   * the call fails on such an image, which doubles as an in-use check.
   */
  async info(file: string, format: VolumeFormat, signal: AbortSignal, shareLocks = true): Promise<QemuImgInfo> {
    const args = ['info', ...(shareLocks ? ['-U'] : []), '-f', format, '--output=json', assertAbsolute(file)];
    const { stdout } = await this.runner.run('qemu-img', args, { timeoutMs: QEMU_IMG_META_TIMEOUT_MS, signal });
    return parseQemuImgInfo(stdout);
  }

  /** Creates an empty image of `format` and `sizeBytes`. */
  async create(file: string, format: VolumeFormat, sizeBytes: number, signal: AbortSignal): Promise<void> {
    await this.runner.run('qemu-img', ['create', '-q', '-f', format, assertAbsolute(file), String(sizeBytes)], { timeoutMs: QEMU_IMG_META_TIMEOUT_MS, signal });
  }

  /** Creates a qcow2 image, optionally as an overlay on `backing` (a file name relative to `file`). */
  async createQcow2(file: string, sizeBytes: number | undefined, backing: { file: string; format: VolumeFormat } | undefined, signal: AbortSignal): Promise<void> {
    const args = ['create', '-q', '-f', 'qcow2'];
    if (backing) args.push('-b', backing.file, '-F', backing.format);
    args.push(assertAbsolute(file));
    if (sizeBytes !== undefined) args.push(String(sizeBytes));
    await this.runner.run('qemu-img', args, { timeoutMs: QEMU_IMG_META_TIMEOUT_MS, signal });
  }

  /** Grows an image's virtual size to `sizeBytes`. */
  async resize(file: string, format: VolumeFormat, sizeBytes: number, signal: AbortSignal): Promise<void> {
    await this.runner.run('qemu-img', ['resize', '-q', '-f', format, assertAbsolute(file), String(sizeBytes)], { timeoutMs: QEMU_IMG_META_TIMEOUT_MS, signal });
  }

  /** Full, sparse copy of `src` (following its backing chain) into `dst` (a new image unless `targetExists`). */
  async convert(src: string, srcFormat: VolumeFormat, dst: string, dstFormat: VolumeFormat, signal: AbortSignal, options: ConvertOptions = {}): Promise<void> {
    const { onProgress } = options;
    const args = ['convert', onProgress ? '-p' : '-q', ...(options.targetExists ? ['-n'] : []), '-f', srcFormat, '-O', dstFormat, assertAbsolute(src), assertAbsolute(dst)];
    await this.runner.run('qemu-img', args, {
      timeoutMs: options.timeoutMs ?? QEMU_IMG_COPY_TIMEOUT_MS,
      signal,
      ...(onProgress ? { onOutput: (chunk: string) => { const f = parseConvertProgress(chunk); if (f !== undefined) onProgress(f); } } : {}),
    });
  }

  /**
   * Safe rebase of a qcow2 image onto `backing` (or onto nothing): copies whatever differs so the
   * image's visible content is unchanged. `backing.file` is relative to the image.
   */
  async rebase(file: string, backing: { file: string; format: VolumeFormat } | undefined, signal: AbortSignal): Promise<void> {
    const args = ['rebase', '-q', '-f', 'qcow2', ...(backing ? ['-b', backing.file, '-F', backing.format] : ['-b', '']), assertAbsolute(file)];
    await this.runner.run('qemu-img', args, { timeoutMs: QEMU_IMG_COPY_TIMEOUT_MS, signal });
  }
}

function assertAbsolute(file: string): string {
  if (!file.startsWith('/')) throw new StowageError('INTERNAL', `qemu-img wrapper needs an absolute path, got ${JSON.stringify(file)}`, { file });
  return file;
}
