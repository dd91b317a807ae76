import type { TransformJobDescription } from '../contract/description';
import type { NormalizedJob } from '../contract/job';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { JobValidationError } from '../job/problems';
import { DockerUnavailableError, ModelImageError, prepareModelImage } from '../local/docker-model';
import { JobNameInUseError } from '../local/job-name-lock';
import { checkLocalRequest, type LocalRunOptions, runLocalJob } from '../local/runner';
import { modelUrlProblem } from '../model/model-url';
import type { ModelSource } from '../local/worker';
import { Storages } from '../storage/index';
import { LocationError } from '../storage/uri';
import { CliError, EXIT, earlier, readJsonInput } from './io';
import { exampleModelSource, exampleModelNames } from './models';

/** Signals that stop a local run cleanly (SIGINT: Ctrl-C; SIGTERM: `kill`; SIGHUP: the terminal closed). */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

interface RunOptions {
  local?: boolean;
  model?: string;
  modelCommand?: string;
  modelUrl?: string;
  modelImage?: string;
  modelData?: string;
  endpointUrl?: string;
  workDir?: string;
  json?: boolean;
}

export function registerRun(program: Command, setExit: (code: number) => void): void {
  program
    .command('run')
    .description(
      'Run a transform job end to end. With --local: on this machine, one sidecar and one model process (or container) per instance.',
    )
    .argument('<job>', 'CreateTransformJob request JSON file, or - for standard input')
    .option('--local', 'run on this machine (the only mode of `run`; use `submit` for a deployed stack)')
    .option(
      '--model <name>',
      `an example model: ${exampleModelNames().join(', ')} (default: the job's ModelName when it names one)`,
    )
    .option(
      '--model-command <cmd>',
      'a shell command that starts a SageMaker-compatible server on $SAGEMAKER_BIND_TO_PORT (started once per instance)',
    )
    .option(
      '--model-url <url>',
      'http://host:port of a SageMaker-compatible server that is already running (shared by every instance)',
    )
    .option(
      '--model-image <image>',
      'a SageMaker inference image, run in Docker once per instance (`serve`, port 8080, artifacts at /opt/ml/model); pulled when missing',
    )
    .option(
      '--model-data <url>',
      'ModelDataUrl: a model.tar.gz (s3:// or file://) extracted into the directory the model is told about (SM_MODEL_DIR)',
    )
    .option('--endpoint-url <url>', 'S3-compatible endpoint for s3:// locations (sets AWS_ENDPOINT_URL_S3)')
    .option('--work-dir <uri>', 'where plan, progress and summary go (file:// or s3://)')
    .option('--json', 'print the DescribeTransformJob-shaped result as JSON on the last line')
    .addHelpText(
      'after',
      '\nExit codes: 0 Completed, 1 Failed or Stopped, 2 invalid request.\n\nExample:\n  npx batch-transform run examples/iris/job.json --local',
    )
    .action(async (file: string, opts: RunOptions) => {
      try {
        await runAction(file, opts, setExit);
      } catch (e) {
        if (e instanceof JobValidationError) {
          if (opts.json)
            process.stdout.write(
              `${JSON.stringify({ TransformJobStatus: 'Invalid', Problems: e.problems })}\n`,
            );
          else process.stderr.write(`${e.message}\n`);
          setExit(EXIT.invalid);
          return;
        }
        // Every outcome is one clear message, and with --json one JSON line last: never a stack trace.
        const err = asCliError(e);
        if (opts.json) {
          const outcome =
            err.exitCode === EXIT.invalid
              ? { TransformJobStatus: 'Invalid', Problems: [{ path: err.path ?? '', message: err.message }] }
              : { TransformJobStatus: 'Failed', FailureReason: err.message };
          process.stdout.write(`${JSON.stringify(outcome)}\n`);
        }
        throw err;
      }
    });
}

async function runAction(file: string, opts: RunOptions, setExit: (code: number) => void): Promise<void> {
  if (!opts.local)
    throw new CliError('`run` needs --local (to run a job on a deployed stack use `submit --wait`)');
  const request = await readJsonInput(file);
  // The request's problems come first, with their paths, before anything reads its fields.
  const job = checkLocalRequest(request);
  const model = chooseModel(opts, job);
  // Docker and the image are checked before anything runs: a missing engine is a usage error.
  if (model.kind === 'image')
    await prepareModelImage(model.image, {
      onPull: () => process.stderr.write(`batch-transform: pulling ${model.image}\n`),
    });
  if (opts.endpointUrl) process.env.AWS_ENDPOINT_URL_S3 = opts.endpointUrl;
  const storage = new Storages();
  const abort = new AbortController();
  // Ctrl-C, `kill` and a closed terminal all stop the job the same way: workers stopped, open
  // uploads aborted, the job reported Stopped. Further signals while it stops are ignored.
  const onSignal = (signal: NodeJS.Signals) => {
    if (!abort.signal.aborted) process.stderr.write(`batch-transform: ${signal}: stopping the job\n`);
    abort.abort(signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  const bar = !opts.json && process.stderr.isTTY ? newProgressBar() : undefined;
  const started = Date.now();
  try {
    const { description, logDir, warnings } = await runLocalJob({
      request,
      storage,
      model,
      ...(opts.modelData ? { modelSpec: { modelDataUrl: resolveFileUri(opts.modelData) } } : {}),
      ...(opts.workDir
        ? { workRoot: resolveFileUri(opts.workDir.endsWith('/') ? opts.workDir : `${opts.workDir}/`) }
        : {}),
      sidecarEnv: opts.endpointUrl ? { AWS_ENDPOINT_URL_S3: opts.endpointUrl } : {},
      signal: abort.signal,
      onPhase: (phase, detail) => {
        if (phase === 'planned' && bar) {
          const plan = detail as { totalBytes: number; objectCount: number; partitions: unknown[] };
          bar.start(Math.max(1, plan.totalBytes), 0, {
            objects: `0/${plan.objectCount}`,
            records: 0,
            mb: '0.0',
            rate: '0.0',
          });
        }
      },
      // Only for the bar: without one, the runner need not read the workers' reports as they go.
      ...(bar ? { onProgress: progressTo(bar, started) } : {}),
    });
    bar?.stop();
    for (const w of warnings) process.stderr.write(`batch-transform: warning: ${w}\n`);
    report(description, logDir, opts.json === true);
    setExit(description.TransformJobStatus === 'Completed' ? EXIT.ok : EXIT.failed);
  } catch (e) {
    bar?.stop();
    throw e;
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    storage.destroy();
  }
}

type ProgressBar = ReturnType<typeof newProgressBar>;

function progressTo(bar: ProgressBar, started: number): NonNullable<LocalRunOptions['onProgress']> {
  return ({ counters, totalBytes, objectCount }) => {
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    bar.setTotal(Math.max(1, totalBytes));
    bar.update(Math.min(counters.bytesIn, totalBytes), {
      objects: `${counters.objectsCompleted + counters.objectsFailed + counters.objectsCompletedEarlier}/${objectCount}`,
      records: counters.records,
      mb: (counters.bytesIn / 1048576).toFixed(1),
      rate: (counters.bytesIn / 1048576 / secs).toFixed(1),
    });
  };
}

/** The failure as the one-line error the CLI prints: exit 2 for what the user can fix before a run. */
function asCliError(e: unknown): CliError {
  if (e instanceof CliError) return e;
  if (e instanceof JobNameInUseError) return new CliError(e.message, EXIT.invalid, 'TransformJobName');
  if (e instanceof LocationError) return new CliError(e.message, EXIT.invalid);
  if (e instanceof DockerUnavailableError || e instanceof ModelImageError)
    return new CliError(e.message, EXIT.invalid, '--model-image');
  const message = e instanceof Error ? e.message : String(e);
  // The AWS SDK's words when no region is configured for an s3:// location.
  if (/region is missing/i.test(message))
    return new CliError(
      's3:// locations need an AWS region: set AWS_REGION (any region name for an S3-compatible server given with --endpoint-url)',
    );
  return new CliError(message, EXIT.failed);
}

function chooseModel(opts: RunOptions, job: NormalizedJob): ModelSource {
  const given = [opts.model, opts.modelCommand, opts.modelUrl, opts.modelImage].filter(Boolean).length;
  if (given > 1)
    throw new CliError('give only one of --model, --model-command, --model-url and --model-image');
  if (opts.modelImage) return { kind: 'image', image: opts.modelImage };
  if (opts.modelCommand) return { kind: 'command', command: opts.modelCommand };
  if (opts.modelUrl) {
    const url = opts.modelUrl.replace(/\/+$/, '');
    const why = modelUrlProblem(url);
    if (why) throw new CliError(`--model-url ${why}`);
    return { kind: 'url', url };
  }
  const name = opts.model ?? job.ModelName;
  const example = exampleModelSource(name);
  if (example) return example;
  if (opts.model)
    throw new CliError(`no example model named "${opts.model}"; examples: ${exampleModelNames().join(', ')}`);
  throw new CliError(
    `the job's ModelName ${JSON.stringify(name)} is not an example model; pass --model-image <image>, --model-command "<cmd>", --model-url <url> or --model <${exampleModelNames().join('|')}>`,
  );
}

function resolveFileUri(uri: string): string {
  if (uri.startsWith('file://') && !uri.startsWith('file:///'))
    return `file://${resolve(uri.slice(7))}${uri.endsWith('/') ? '/' : ''}`;
  if (!uri.includes('://')) return `file://${resolve(uri)}${uri.endsWith('/') ? '/' : ''}`;
  return uri;
}

function newProgressBar() {
  return new cliProgress.SingleBar(
    {
      format:
        ' {bar} {percentage}% | objects {objects} | records {records} | {mb} MB | {rate} MB/s | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
}

function report(d: TransformJobDescription, logDir: string, json: boolean): void {
  const p = d.Progress;
  const lines = [
    `Transform job ${d.TransformJobName}: ${d.TransformJobStatus}`,
    `  objects: ${p.objectsCompleted} completed, ${p.objectsFailed} failed, ${p.skippedObjects} skipped,${earlier(p)} of ${p.objectsTotal}`,
    `  records: ${p.records} (${p.failedRecords} isolated as errors); ${formatBytes(p.bytesIn)} in, ${formatBytes(p.bytesOut)} out`,
    `  outputs: ${d.TransformOutput?.S3OutputPath}`,
    ...(d.FailureReason ? [`  reason:  ${d.FailureReason}`] : []),
    ...(d.FailedObjects ?? [])
      .slice(0, 10)
      .map(
        (f) =>
          `  failed:  ${f.uri}${f.offset !== undefined && !f.reason.includes(`offset ${f.offset}`) ? ` (record at byte ${f.offset})` : ''}: ${f.reason}`,
      ),
    `  logs:    ${logDir}`,
  ];
  const out = json ? process.stderr : process.stdout;
  out.write(`${lines.join('\n')}\n`);
  if (json) process.stdout.write(`${JSON.stringify(d)}\n`);
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1073741824) return `${(n / 1048576).toFixed(1)} MiB`;
  return `${(n / 1073741824).toFixed(2)} GiB`;
}
