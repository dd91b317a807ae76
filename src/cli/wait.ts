import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import type { JobDescription } from '../client/describe';
import { DEFAULT_POLL_INTERVAL_MS } from '../client/defaults';
import type { TransformJob } from '../client/transformer';
import {
  addDeploymentOptions,
  DEPLOYMENT_HELP,
  type DeploymentOptions,
  exitCodeOf,
  formatDescription,
  parseSeconds,
  withTransformer,
} from './deployed';

interface WaitCliOptions extends DeploymentOptions {
  json?: boolean;
  pollInterval?: number;
}

export function registerWait(program: Command, setExit: (code: number) => void): void {
  addDeploymentOptions(
    program
      .command('wait')
      .description(
        'Wait until a transform job on the deployed stack ends, with a progress bar on a terminal; prints its description.',
      )
      .argument('<name>', 'the TransformJobName'),
  )
    .option('--json', 'print the final DescribeTransformJob-shaped description as JSON')
    .option(
      '--poll-interval <seconds>',
      'seconds between polls',
      parseSeconds,
      DEFAULT_POLL_INTERVAL_MS / 1000,
    )
    .addHelpText(
      'after',
      `\nExit codes: 0 Completed, 1 Failed or Stopped, 2 no such job or no deployment found.\nCtrl-C stops waiting, not the job.\n${DEPLOYMENT_HELP}\n\nExample:\n  batch-transform wait iris-2030-01-31`,
    )
    .action(async (name: string, opts: WaitCliOptions) => {
      await withTransformer(opts, async (t) => {
        setExit(await waitAndReport(await t.attach(name), opts));
      });
    });
}

/** Where `wait` writes: the description to stdout, the progress bar to stderr when it is a terminal. */
export interface WaitStreams {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { readonly isTTY?: boolean };
}

/**
 * Polls a job until it ends and prints its description (human or JSON) on standard output. A
 * progress bar goes to standard error when it is a terminal (and --json is not given); otherwise
 * waiting is quiet. Returns the exit code: 0 Completed, 1 Failed or Stopped.
 */
export async function waitAndReport(
  job: TransformJob,
  opts: { json?: boolean; pollInterval?: number },
  streams: WaitStreams = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const bar = !opts.json && streams.stderr.isTTY ? new JobProgressBar(streams.stderr) : undefined;
  let final: JobDescription;
  try {
    final = await job.wait({
      pollIntervalMs: (opts.pollInterval ?? DEFAULT_POLL_INTERVAL_MS / 1000) * 1000,
      ...(bar ? { onUpdate: (d: JobDescription) => bar.update(d) } : {}),
    });
  } finally {
    bar?.stop();
  }
  streams.stdout.write(opts.json ? `${JSON.stringify(final, null, 2)}\n` : `${formatDescription(final)}\n`);
  return exitCodeOf(final);
}

/**
 * Bytes read of the planned input. Before the plan exists the bar shows the status alone; a
 * completed job's final description (no input size in it) fills the bar.
 */
class JobProgressBar {
  readonly #bar: cliProgress.SingleBar;
  #total: number | undefined;
  #started = false;

  constructor(stream: NodeJS.WritableStream) {
    this.#bar = new cliProgress.SingleBar(
      {
        format:
          ' {bar} {percentage}% | {status} | objects {objects} | records {records} | {mb} MB | ETA {eta_formatted}',
        stream,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(d: JobDescription): void {
    const p = d.Progress;
    if (p?.totalBytes) this.#total = p.totalBytes;
    const total = Math.max(1, this.#total ?? 1);
    const payload = {
      status: d.TransformJobStatus,
      objects: p ? `${p.objectsCompleted + p.objectsFailed}/${p.objectsTotal}` : '-',
      records: p?.records ?? 0,
      mb: ((p?.bytesIn ?? 0) / 1048576).toFixed(1),
    };
    const value = d.TransformJobStatus === 'Completed' ? total : Math.min(p?.bytesIn ?? 0, total);
    if (!this.#started) {
      this.#bar.start(total, value, payload);
      this.#started = true;
      return;
    }
    this.#bar.setTotal(total);
    this.#bar.update(value, payload);
  }

  stop(): void {
    if (this.#started) this.#bar.stop();
  }
}
