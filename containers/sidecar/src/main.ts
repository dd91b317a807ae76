import { FileStorage, Storages, storages } from '../../../src/storage/index';
import { ConfigError, configFromEnv } from './config';
import { createLogger } from './log';
import { runPartition } from './partition';
import { watchContainer } from './task-metadata';

/**
 * The sidecar's entry point. `run` (the default) transforms one partition of a job beside the model
 * container; `fetch-model` downloads and extracts ModelDataUrl into MODEL_DIR (the task's init
 * container, which the model container waits for).
 *
 * Exit codes: 0 the partition ran to its end (objects may still have failed: the result says which),
 * 1 it could not (model unavailable, storage unreachable), 2 bad configuration, 143 stopped by SIGTERM
 * (or because the local runner that started it is gone).
 *
 * On ECS, ECS_CONTAINER_METADATA_URI_V4 (set by ECS) is where the sidecar learns that the model
 * container (MODEL_CONTAINER, default `model`) has exited; local runs pass MODEL_PID instead.
 *
 * Local runs only: FILE_STAGING_DIR is where file:// outputs are written before their rename into
 * place (see FileStorage); PARENT_PIPE=stdin says standard input is a pipe from the runner, which
 * reaches end of file when the runner dies.
 */
async function main(argv: readonly string[]): Promise<number> {
  const command = argv[2] ?? 'run';
  const stagingDir = process.env.FILE_STAGING_DIR;
  const storage = stagingDir ? new Storages({ file: new FileStorage({ stagingDir }) }) : storages();
  if (command === 'fetch-model') {
    const url = process.env.MODEL_DATA_URL;
    const dir = process.env.MODEL_DIR ?? '/opt/ml/model';
    if (!url) {
      process.stderr.write('fetch-model needs MODEL_DATA_URL\n');
      return 2;
    }
    // Only the init container extracts archives: the transform never loads tar.
    const { fetchModelData } = await import('../../../src/model/model-data');
    // The download budget: a stalled download fails the task instead of holding it for hours.
    const budgetS = Number(process.env.MODEL_DATA_DOWNLOAD_TIMEOUT_SECONDS ?? 3600);
    const budget = setTimeout(() => {
      process.stderr.write(
        `fetch-model failed: downloading and extracting ${url} did not finish within ${budgetS} s, its download budget (modelDataDownloadTimeoutSeconds)\n`,
      );
      process.exit(1);
    }, budgetS * 1000);
    budget.unref();
    try {
      const { files } = await fetchModelData(storage, url, dir);
      process.stderr.write(`extracted ${files} entries from ${url} into ${dir}\n`);
      return 0;
    } catch (e) {
      // The cause as it is (EACCES, NoSuchKey, not a .tar.gz), which ECS shows as the task's reason.
      process.stderr.write(`fetch-model failed: ${(e as Error).message}\n`);
      return 1;
    }
  }
  if (command !== 'run') {
    process.stderr.write(`unknown command "${command}"; expected run or fetch-model\n`);
    return 2;
  }
  let config: ReturnType<typeof configFromEnv>;
  try {
    config = configFromEnv();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const log = createLogger({ partition: config.partition, job: config.jobUri });
  const stop = new AbortController();
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    log.warn(`${sig} received: no new mini-batches, open uploads aborted`);
    stop.abort(sig);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const modelPid = process.env.MODEL_PID ? Number(process.env.MODEL_PID) : undefined;
  if (process.env.PARENT_PIPE === 'stdin') watchParent(() => onSignal('SIGTERM'), modelPid);
  // On ECS the model is a container of the task: its exit is read from the task metadata endpoint.
  const metadataUri = process.env.ECS_CONTAINER_METADATA_URI_V4;
  const modelContainer =
    modelPid === undefined && metadataUri
      ? watchContainer(metadataUri, process.env.MODEL_CONTAINER ?? 'model')
      : undefined;
  const modelExited = modelPid
    ? () => processGone(modelPid)
    : modelContainer
      ? () => modelContainer.exited()
      : undefined;
  const result = await runPartition(config, {
    storage,
    log,
    signal: stop.signal,
    ...(modelExited ? { modelExited } : {}),
    ...(config.metrics ? { writeMetrics: (line: string) => process.stdout.write(`${line}\n`) } : {}),
  }).finally(() => modelContainer?.stop());
  if (signalled) return 143;
  if (result.fatal) {
    log.error(result.fatal);
    return 1;
  }
  log.info('partition finished', { counters: result.counters });
  return 0;
}

/** Set once the local runner that started this worker is gone (see watchParent). */
let parentGone = false;

/**
 * Ends this worker when the local runner that started it dies (even by SIGKILL, which it cannot
 * handle): its pipe on our standard input then reaches end of file. Stops like SIGTERM (open uploads
 * aborted), ends the model process group the runner started beside us, and exits within a grace
 * period whatever is still pending.
 */
function watchParent(stop: () => void, modelPid: number | undefined): void {
  const GRACE_MS = 5000;
  const onGone = () => {
    if (parentGone) return;
    parentGone = true;
    stop();
    killGroup(modelPid, 'SIGTERM');
    setTimeout(() => {
      killGroup(modelPid, 'SIGKILL');
      process.exit(143);
    }, GRACE_MS).unref();
  };
  process.stdin.on('end', onGone);
  process.stdin.on('error', onGone);
  process.stdin.resume();
}

/** Signals a process's group (a shell-started model server is a grandchild), else the process. */
function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {}
  }
}

function processGone(pid: number): string | undefined {
  try {
    process.kill(pid, 0);
    return undefined;
  } catch {
    return `model process ${pid} is no longer running`;
  }
}

main(process.argv).then(
  (code) => {
    // A model left running by a worker whose runner died must end with it.
    if (parentGone) killGroup(process.env.MODEL_PID ? Number(process.env.MODEL_PID) : undefined, 'SIGKILL');
    process.exit(code);
  },
  (e) => {
    process.stderr.write(`sidecar failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
