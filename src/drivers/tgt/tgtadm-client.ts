import { StowageError } from '../../core/errors.js';
import { CommandFailedError, type CommandRunner } from '../../system/command-runner.js';
import { parseTgtadmAccounts, parseTgtadmShow, type TgtTarget } from './tgtadm-show.js';

/** What a failed tgtadm call meant, read from its stderr (tgtadm answers rc 22 for all of these). */
export const TGTADM_FAILURES = ['exists', 'missing', 'active', 'invalid', 'unreachable', 'other'] as const;
/** One of TGTADM_FAILURES. */
export type TgtadmFailure = (typeof TGTADM_FAILURES)[number];

/** Classifies tgtadm's stderr: `already exists` / `does not exist` / `can't find` / `still active` / daemon down. */
export function classifyTgtadmError(stderr: string): TgtadmFailure {
  if (/already exists/.test(stderr)) return 'exists';
  if (/does not exist|can't find/.test(stderr)) return 'missing';
  if (/still active/.test(stderr)) return 'active';
  if (/failed to send request|can't connect|Transport endpoint is not connected|No such file or directory/.test(stderr)) return 'unreachable';
  if (/invalid request/.test(stderr)) return 'invalid';
  return 'other';
}

/** Options for one tgtadm call. */
export interface TgtadmCall {
  readonly signal: AbortSignal;
  /** Failures that count as success (e.g. `exists` for an idempotent bind). */
  readonly tolerate?: readonly TgtadmFailure[];
  /** Strings redacted from logs and errors (CHAP secrets). */
  readonly secrets?: readonly string[];
}

/** Thin argv-only wrapper over `tgtadm -C <control> --lld iscsi`, turning failures into StowageErrors. */
export class TgtadmClient {
  constructor(private readonly runner: CommandRunner, readonly controlPort: number, private readonly timeoutMs = 30_000) {}

  /** Runs one tgtadm command; returns its stdout, or undefined when a tolerated failure happened. */
  async run(args: readonly string[], call: TgtadmCall): Promise<string | undefined> {
    try {
      const res = await this.runner.run('tgtadm', ['-C', String(this.controlPort), '--lld', 'iscsi', ...args], {
        timeoutMs: this.timeoutMs,
        signal: call.signal,
        ...(call.secrets ? { secrets: call.secrets } : {}),
      });
      return res.stdout;
    } catch (err) {
      if (!(err instanceof CommandFailedError)) throw err;
      const kind = err.timedOut ? 'unreachable' : classifyTgtadmError(err.stderrTail);
      if (call.tolerate?.includes(kind)) return undefined;
      const code = kind === 'unreachable' ? 'BACKEND_UNAVAILABLE' : 'DRIVER_FAILED';
      throw new StowageError(code, `tgt driver: ${err.message}`, { command: err.command, exitCode: err.exitCode, failure: kind }, { cause: err });
    }
  }

  /** All targets of this tgtd, parsed. */
  async showTargets(signal: AbortSignal): Promise<TgtTarget[]> {
    return parseTgtadmShow((await this.run(['--op', 'show', '--mode', 'target'], { signal })) ?? '');
  }

  /** All CHAP account names known to this tgtd. */
  async showAccounts(signal: AbortSignal): Promise<string[]> {
    return parseTgtadmAccounts((await this.run(['--op', 'show', '--mode', 'account'], { signal })) ?? '');
  }

  /** Portals tgtd listens on, as `host:port` (the `,tpgt` suffix dropped). */
  async showPortals(signal: AbortSignal): Promise<string[]> {
    const out = (await this.run(['--op', 'show', '--mode', 'portal'], { signal })) ?? '';
    return [...out.matchAll(/^Portal: (\S+?)(?:,\d+)?$/gm)].map((m) => m[1] ?? '');
  }
}
