/**
 * Server settings, resolved once at start-up from options and the environment SageMaker gives a
 * serving container. Bad values fail start-up with the variable's name, not a request later.
 */

const MiB = 1024 * 1024;

/** The request size limit when nothing sets one: the 6 MB default of SageMaker's model servers. */
export const DEFAULT_MAX_REQUEST_BYTES = 6 * MiB;

export interface ModelServerOptions {
  /** Port to listen on; 0 picks a free one. @default SAGEMAKER_BIND_TO_PORT, else 8080 */
  readonly port?: number;
  /** Address to bind. @default SAGEMAKER_BIND_TO_HOST, else 0.0.0.0 */
  readonly host?: string;
  /** Folder with the model artifacts, given to `modelFn`. @default SM_MODEL_DIR, else /opt/ml/model */
  readonly modelDir?: string;
  /**
   * Largest request body the model accepts; larger bodies are answered 413. The model author's limit:
   * `SAGEMAKER_MAX_REQUEST_SIZE` (bytes) overrides it, and it overrides `SAGEMAKER_MAX_PAYLOAD_IN_MB`.
   * @default SAGEMAKER_MAX_PAYLOAD_IN_MB (0 = no limit), else 6 MiB
   */
  readonly maxRequestBytes?: number;
  /** One log line per request. @default MODEL_SERVER_LOG_REQUESTS=true|1, else off */
  readonly logRequests?: boolean;
  /** How long SIGTERM waits for in-flight invocations before closing their connections. @default 20000 */
  readonly shutdownGraceMs?: number;
  /** Where settings are read from. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Where log lines go. @default stdout for information, stderr for errors */
  readonly log?: (line: string, level: 'info' | 'error') => void;
}

export interface ServerSettings {
  readonly port: number;
  readonly host: string;
  readonly modelDir: string;
  readonly maxRequestBytes: number;
  readonly logRequests: boolean;
  readonly shutdownGraceMs: number;
  /** SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: the response type when a request has no Accept. */
  readonly defaultAccept: string | undefined;
}

function integer(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name}="${raw}" is not an integer from ${min} to ${max}`);
  }
  return value;
}

export function resolveSettings(options: ModelServerOptions = {}): ServerSettings {
  const env = options.env ?? process.env;
  const requestSize = integer(env, 'SAGEMAKER_MAX_REQUEST_SIZE', 1, Number.MAX_SAFE_INTEGER);
  // The batch environment: the largest payload the job will send. 0 means "the whole object", so no limit.
  const payloadMB = integer(env, 'SAGEMAKER_MAX_PAYLOAD_IN_MB', 0, 100);
  const fromPayload = payloadMB === undefined ? undefined : payloadMB === 0 ? Infinity : payloadMB * MiB;
  const logFlag = env['MODEL_SERVER_LOG_REQUESTS']?.toLowerCase();
  return {
    port: options.port ?? integer(env, 'SAGEMAKER_BIND_TO_PORT', 0, 65535) ?? 8080,
    host: options.host ?? (env['SAGEMAKER_BIND_TO_HOST'] || '0.0.0.0'),
    modelDir: options.modelDir ?? (env['SM_MODEL_DIR'] || '/opt/ml/model'),
    maxRequestBytes: requestSize ?? options.maxRequestBytes ?? fromPayload ?? DEFAULT_MAX_REQUEST_BYTES,
    logRequests: options.logRequests ?? (logFlag === 'true' || logFlag === '1'),
    shutdownGraceMs: options.shutdownGraceMs ?? 20_000,
    defaultAccept: env['SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT'] || undefined,
  };
}
