import { join } from 'node:path';
import type { JobRef, PlanRef } from '../contract/state';
import { type ModelContainer, startModelContainer } from './docker-model';
import { freePort, type ManagedProcess, startProcess } from './processes';
import { sidecarArgv } from './sidecar-bundle';

/** Where a worker's model comes from in a local run. */
export type ModelSource =
  /** Start this argv (cwd = the project root) once per worker, on the port in SAGEMAKER_BIND_TO_PORT. */
  | { readonly kind: 'argv'; readonly argv: readonly string[]; readonly cwd: string; readonly label: string }
  /** Start this shell command once per worker, on the port in SAGEMAKER_BIND_TO_PORT. */
  | { readonly kind: 'command'; readonly command: string }
  /** A server that is already running; every worker shares it. */
  | { readonly kind: 'url'; readonly url: string }
  /** A SageMaker inference image, run in Docker once per worker (docker-model.ts). */
  | { readonly kind: 'image'; readonly image: string };

export { SIDECAR_ENTRY } from './sidecar-bundle';

export interface WorkerOptions {
  readonly ref: JobRef;
  readonly plan: PlanRef;
  readonly partition: number;
  readonly model: ModelSource;
  /** Directory the model is told about (SM_MODEL_DIR), holding extracted ModelDataUrl artifacts. */
  readonly modelDir: string;
  readonly logDir: string;
  /** The run's local folder: labels a model image's containers with their run. */
  readonly runDir: string;
  /** Whether `modelDir` holds ModelDataUrl's artifacts (mounted into a model image only then). */
  readonly modelData?: boolean;
  /** Extra environment for the sidecar (storage endpoint settings). */
  readonly env: NodeJS.ProcessEnv;
  readonly progressIntervalMs?: number;
  /** The node arguments that start the sidecar, when the caller found them already. @default sidecarArgv() */
  readonly sidecarArgv?: readonly string[];
}

export interface WorkerHandle {
  readonly partition: number;
  /** Resolves when the worker is done: the sidecar's exit code and, when it failed, why. */
  readonly done: Promise<{ code: number | null; reason?: string }>;
  /** Stops the worker the way ECS stops a task: SIGTERM to the sidecar and the model. */
  stop(): Promise<void>;
}

/**
 * One local worker: the model server process beside a sidecar process, the same pair an ECS task
 * runs. The sidecar is the real entry point (containers/sidecar/src/main.ts) as a plain Node process,
 * bundled as its image bundles it (sidecar-bundle.ts).
 */
export async function startWorker(o: WorkerOptions): Promise<WorkerHandle> {
  const name = `worker-${String(o.partition).padStart(3, '0')}`;
  // Before the model starts: building the sidecar bundle can take seconds, and a model (a container
  // above all) started before its sidecar outlives a runner killed in that gap.
  const sidecarArgs = o.sidecarArgv ?? (await sidecarArgv());
  let model: ManagedProcess | undefined;
  let container: ModelContainer | undefined;
  let modelUrl: string;
  if (o.model.kind === 'url') {
    modelUrl = o.model.url;
  } else if (o.model.kind === 'image') {
    container = await startModelContainer({
      image: o.model.image,
      worker: name,
      jobName: o.ref.jobName,
      runDir: o.runDir,
      ...(o.modelData ? { modelDir: o.modelDir } : {}),
      environment: Object.fromEntries(o.ref.modelEnvironment.map((e) => [e.Name, e.Value])),
      logFile: join(o.logDir, `${name}.model.log`),
    });
    model = container.process;
    modelUrl = container.url;
  } else {
    const port = await freePort();
    modelUrl = `http://127.0.0.1:${port}`;
    const env = {
      ...process.env,
      ...Object.fromEntries(o.ref.modelEnvironment.map((e) => [e.Name, e.Value])),
      SAGEMAKER_BIND_TO_PORT: String(port),
      SAGEMAKER_BIND_TO_HOST: '127.0.0.1',
      SM_MODEL_DIR: o.modelDir,
    };
    const logFile = join(o.logDir, `${name}.model.log`);
    model =
      o.model.kind === 'command'
        ? startProcess(`${name} model`, o.model.command, [], { env, logFile, shell: true })
        : startProcess(`${name} model`, o.model.argv[0]!, o.model.argv.slice(1), {
            env,
            cwd: o.model.cwd,
            logFile,
          });
  }
  const sidecar = startProcess(`${name} sidecar`, process.execPath, [...sidecarArgs, 'run'], {
    env: {
      ...process.env,
      ...o.env,
      JOB_URI: o.ref.jobUri,
      PLAN_URI: o.plan.planUri,
      PARTITION_INDEX: String(o.partition),
      MODEL_URL: modelUrl,
      ...(model?.child.pid ? { MODEL_PID: String(model.child.pid) } : {}),
      PARENT_PIPE: 'stdin',
      PROGRESS_INTERVAL_MS: String(o.progressIntervalMs ?? 500),
      METRICS: 'off',
    },
    logFile: join(o.logDir, `${name}.sidecar.log`),
    // The sidecar's reason is in its partition result, in words; its log lines are JSON.
    reportOutput: false,
    // The sidecar ends itself, and its model, when this process dies (PARENT_PIPE, see its main).
    parentPipe: true,
  });
  const stopModel = () => (container ? container.stop() : model?.stop());
  const done = (async () => {
    const { code } = await sidecar.exited;
    const modelReason = model?.exitReason();
    await stopModel();
    if (code === 0) return { code };
    // A container is named even while it runs: the sidecar's reason only knows its loopback URL.
    const modelPart = container
      ? `; its model container ${container.name} (image ${container.image})${modelReason ? ` ${modelReason}` : ''}`
      : modelReason
        ? `; its model process ${modelReason}`
        : '';
    return { code, reason: `${name} sidecar ${sidecar.exitReason()}${modelPart} (logs: ${o.logDir})` };
  })();
  return {
    partition: o.partition,
    done,
    async stop() {
      await Promise.all([sidecar.stop(), stopModel()]);
    },
  };
}
