import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { errors, Pool } from 'undici';

/**
 * The sidecar's HTTP client for the model container: a keep-alive pool (undici, not global fetch, so
 * connections, timeouts and body consumption are under our control) speaking SageMaker's contract:
 * GET /ping, GET /execution-parameters, POST /invocations.
 */

/** SageMaker's health check gives each ping 2 seconds. */
export const PING_TIMEOUT_MS = 2000;
const PING_INTERVAL_MS = 250;
/** Backoff between invocation retries: exponential from 200 ms, capped, with full jitter. */
const RETRY_BASE_MS = 200;
const RETRY_CAP_MS = 5000;

export type InvocationOutcome =
  /** `body` is the response as it arrived, in chunks: joining them would copy every response once more. */
  | {
      readonly kind: 'ok';
      readonly status: number;
      readonly body: readonly Buffer[];
      readonly byteLength: number;
    }
  | { readonly kind: 'too-large'; readonly status: 413; readonly message: string }
  | { readonly kind: 'timeout'; readonly message: string }
  | { readonly kind: 'client-error'; readonly status: number; readonly message: string }
  | { readonly kind: 'server-error'; readonly status: number; readonly message: string }
  | { readonly kind: 'connection'; readonly message: string };

export interface InvocationStats {
  invocations: number;
  retries: number;
  errors4xx: number;
  errors5xx: number;
  timeouts: number;
  /** Sum and count of successful invocation latencies, for metrics. */
  latencyMsTotal: number;
  /** Successful invocations, the ones latencyMsTotal adds up. */
  latencyCount: number;
}

export interface ExecutionParameters {
  readonly MaxConcurrentTransforms?: number;
  readonly BatchStrategy?: 'SingleRecord' | 'MultiRecord';
  readonly MaxPayloadInMB?: number;
}

export class ModelUnavailableError extends Error {
  override readonly name = 'ModelUnavailableError';
}

export interface ModelClientOptions {
  readonly url: string;
  readonly connections: number;
  readonly invocationTimeoutMs: number;
  readonly maxRetries: number;
}

export class ModelClient {
  private readonly pool: Pool;
  readonly stats: InvocationStats = {
    invocations: 0,
    retries: 0,
    errors4xx: 0,
    errors5xx: 0,
    timeouts: 0,
    latencyMsTotal: 0,
    latencyCount: 0,
  };

  constructor(private readonly opts: ModelClientOptions) {
    this.pool = new Pool(opts.url, {
      connections: Math.max(1, opts.connections),
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.invocationTimeoutMs,
      bodyTimeout: opts.invocationTimeoutMs,
    });
  }

  /**
   * Waits until GET /ping answers 200, polling, each ping with its own 2 s timeout. Fails with a
   * clear reason when the deadline passes or `exited()` reports that the model process is gone.
   */
  async waitUntilHealthy(
    deadlineMs: number,
    exited: () => string | undefined = () => undefined,
  ): Promise<void> {
    const started = Date.now();
    let last = 'no answer yet';
    for (;;) {
      const gone = exited();
      if (gone) throw new ModelUnavailableError(`the model server exited before it became healthy: ${gone}`);
      const r = await this.ping();
      if (r === true) return;
      last = r;
      if (Date.now() - started >= deadlineMs) {
        throw new ModelUnavailableError(
          `the model server at ${this.opts.url} did not answer GET /ping with 200 within ${Math.round(deadlineMs / 1000)} s (last: ${last})`,
        );
      }
      await sleep(PING_INTERVAL_MS);
    }
  }

  /** true when healthy, else a short description of what happened. */
  async ping(): Promise<true | string> {
    try {
      const res = await this.pool.request({
        method: 'GET',
        path: '/ping',
        headersTimeout: PING_TIMEOUT_MS,
        bodyTimeout: PING_TIMEOUT_MS,
      });
      await res.body.dump();
      return res.statusCode === 200 ? true : `HTTP ${res.statusCode}`;
    } catch (e) {
      return describeError(e);
    }
  }

  /** GET /execution-parameters; undefined when the model does not offer it (any non-200 answer). */
  async executionParameters(): Promise<ExecutionParameters | undefined> {
    try {
      const res = await this.pool.request({
        method: 'GET',
        path: '/execution-parameters',
        headersTimeout: PING_TIMEOUT_MS * 5,
        bodyTimeout: PING_TIMEOUT_MS * 5,
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return undefined;
      }
      const body = (await res.body.json()) as Record<string, unknown>;
      const out: { -readonly [K in keyof ExecutionParameters]: ExecutionParameters[K] } = {};
      if (Number.isInteger(body.MaxConcurrentTransforms) && (body.MaxConcurrentTransforms as number) > 0)
        out.MaxConcurrentTransforms = body.MaxConcurrentTransforms as number;
      if (Number.isInteger(body.MaxPayloadInMB) && (body.MaxPayloadInMB as number) >= 0)
        out.MaxPayloadInMB = body.MaxPayloadInMB as number;
      if (typeof body.BatchStrategy === 'string') {
        const s = body.BatchStrategy.toUpperCase().replace('_', '');
        if (s === 'MULTIRECORD') out.BatchStrategy = 'MultiRecord';
        else if (s === 'SINGLERECORD') out.BatchStrategy = 'SingleRecord';
      }
      return out;
    } catch {
      return undefined;
    }
  }

  /**
   * POST /invocations once. Never throws for HTTP or network outcomes: the caller decides (retry,
   * halve the mini-batch, fail the object). The response body is always consumed or discarded.
   */
  async invokeOnce(
    body: Buffer | readonly Buffer[] | Readable,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<InvocationOutcome> {
    const started = performance.now();
    this.stats.invocations++;
    try {
      // undici sends any iterable of Buffers as the body (its types list only single-value bodies):
      // a mini-batch goes out as its slices of the input, written in order, never joined.
      const res = await this.pool.request({
        method: 'POST',
        path: '/invocations',
        body: body as Buffer | Readable,
        headers,
        signal: signal ?? null,
      });
      if (res.statusCode >= 200 && res.statusCode < 300) {
        const chunks: Buffer[] = [];
        let byteLength = 0;
        for await (const chunk of res.body) {
          chunks.push(chunk as Buffer);
          byteLength += (chunk as Buffer).length;
        }
        this.stats.latencyMsTotal += performance.now() - started;
        this.stats.latencyCount++;
        return { kind: 'ok', status: res.statusCode, body: chunks, byteLength };
      }
      const message = `model answered HTTP ${res.statusCode}${await errorText(res.body)}`;
      if (res.statusCode === 413) {
        this.stats.errors4xx++;
        return { kind: 'too-large', status: 413, message };
      }
      if (res.statusCode >= 500 || res.statusCode === 429) {
        this.stats.errors5xx += res.statusCode >= 500 ? 1 : 0;
        this.stats.errors4xx += res.statusCode === 429 ? 1 : 0;
        return { kind: 'server-error', status: res.statusCode, message };
      }
      this.stats.errors4xx++;
      return { kind: 'client-error', status: res.statusCode, message };
    } catch (e) {
      if (signal?.aborted) throw signal.reason ?? e;
      if (e instanceof errors.HeadersTimeoutError || e instanceof errors.BodyTimeoutError) {
        this.stats.timeouts++;
        return {
          kind: 'timeout',
          message: `model did not answer within InvocationsTimeoutInSeconds (${this.opts.invocationTimeoutMs / 1000} s)`,
        };
      }
      return { kind: 'connection', message: `cannot reach the model: ${describeError(e)}` };
    }
  }

  /**
   * POST /invocations with SageMaker's retry policy: 5xx, 429, timeouts and connection errors are
   * retried up to InvocationsMaxRetries times with backoff. `retryable` lets the caller take over an
   * outcome instead (e.g. halve a multi-record batch on 413 or timeout).
   */
  async invoke(
    body: Buffer | readonly Buffer[],
    headers: Record<string, string>,
    opts: { signal?: AbortSignal; handOver?: (o: InvocationOutcome) => boolean } = {},
  ): Promise<InvocationOutcome> {
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.invokeOnce(body, headers, opts.signal);
      if (outcome.kind === 'ok' || outcome.kind === 'client-error' || outcome.kind === 'too-large')
        return outcome;
      if (opts.handOver?.(outcome)) return outcome;
      if (attempt >= this.opts.maxRetries) return outcome;
      this.stats.retries++;
      const cap = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** attempt);
      await sleep(Math.random() * cap, undefined, opts.signal ? { signal: opts.signal } : undefined);
    }
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }

  destroy(): void {
    void this.pool.destroy().catch(() => {});
  }
}

async function errorText(body: { text(): Promise<string> }): Promise<string> {
  try {
    const text = (await body.text()).trim().replace(/\s+/g, ' ');
    return text ? `: ${text.slice(0, 200)}` : '';
  } catch {
    return '';
  }
}

export function describeError(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err.code ?? err.cause?.code;
  const msg = err.message ?? String(e);
  return code && !msg.includes(code) ? `${code} ${msg}` : msg;
}
