import { modelUrlProblem } from '../../../src/model/model-url';

/**
 * The sidecar's environment contract, set by the state machine's RunTask overrides or by the local
 * runner. Everything else (the job, the plan) is read from storage.
 *
 *   JOB_URI            the normalized job (`<work>/job.json`)
 *   PLAN_URI           the partition plan (`<work>/plan.json`); the sidecar reads only its own
 *                      partition's document beside it (`<work>/partitions/<index>.json`)
 *   PARTITION_INDEX    which partition of the plan this worker runs
 *   MODEL_URL          the model server, default http://127.0.0.1:8080 (same task, awsvpc networking)
 *   PROGRESS_INTERVAL_MS  how often progress is written, default 10000
 *   METRICS            `emf` (CloudWatch embedded metric format lines on stdout, default) or `off`
 */
export interface SidecarConfig {
  readonly jobUri: string;
  readonly planUri: string;
  readonly partition: number;
  readonly modelUrl: string;
  readonly progressIntervalMs: number;
  readonly metrics: boolean;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  const missing = ['JOB_URI', 'PLAN_URI', 'PARTITION_INDEX'].filter((k) => !env[k]);
  if (missing.length) throw new ConfigError(`the sidecar needs ${missing.join(', ')} in its environment`);
  const partition = Number(env.PARTITION_INDEX);
  if (!Number.isInteger(partition) || partition < 0) {
    throw new ConfigError(`PARTITION_INDEX must be a whole number ≥ 0; got "${env.PARTITION_INDEX}"`);
  }
  const interval = env.PROGRESS_INTERVAL_MS ? Number(env.PROGRESS_INTERVAL_MS) : 10_000;
  const modelUrl = (env.MODEL_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const why = modelUrlProblem(modelUrl);
  if (why) throw new ConfigError(`MODEL_URL ${why}`);
  return {
    jobUri: env.JOB_URI!,
    planUri: env.PLAN_URI!,
    partition,
    modelUrl,
    progressIntervalMs: Number.isFinite(interval) && interval > 0 ? interval : 10_000,
    metrics: (env.METRICS ?? 'emf') !== 'off',
  };
}
