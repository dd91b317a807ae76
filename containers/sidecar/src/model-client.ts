import { modelParameterChoices, type ParameterChoices } from '../../../src/contract/parameters';
import { channel } from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlockPool, HttpBodySourceError, Http1Pool, type Http1Response, HttpTimeoutError } from './http1';

/**
 * The sidecar's HTTP client for the model container, speaking SageMaker's contract: GET /ping,
 * GET /execution-parameters, POST /invocations. It runs on our own keep-alive HTTP/1.1 pool
 * (`http1.ts`: responses read into reused blocks, about a third of undici's CPU per byte).
 */

/**
 * Published as each POST /invocations starts (`{ headers }`), for tools watching the sidecar from
 * inside (the benchmark's probe uses it to tell start-up CPU from transform CPU). Free without
 * subscribers.
 */
export const INVOCATION_CHANNEL = 'batch-transform:invocation:start';
const invocationStart = channel(INVOCATION_CHANNEL);

/** SageMaker's health check gives each ping 2 seconds. */
export const PING_TIMEOUT_MS = 2000;
const PING_INTERVAL_MS = 250;
/** Backoff between invocation retries: exponential from 200 ms, capped, with full jitter. */
const RETRY_BASE_MS = 200;
const RETRY_CAP_MS = 5000;

export type InvocationOutcome =
  /**
   * `body` is the response in the pool's blocks, never joined. `release()` hands the blocks back
   * for reuse: call it once nothing refers to `body` (the output is written and the writer keeps no
   * reference), or never, and the garbage collector takes them.
   */
  | {
      readonly kind: 'ok';
      readonly status: number;
      readonly body: readonly Buffer[];
      readonly byteLength: number;
      readonly release: () => void;
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
  private readonly pool: Http1Pool;
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
    // Blocks for about two full 6 MiB responses per connection are kept for reuse.
    const blocks = new BlockPool(256 * 1024, Math.max(64, 48 * Math.max(1, opts.connections)));
    this.pool = new Http1Pool(opts.url, { connections: Math.max(1, opts.connections) + 1, blocks });
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
          `the model server at ${this.opts.url} did not answer GET /ping with 200 within ${Math.round(deadlineMs / 1000)} s, its start-up budget (Extensions.ModelStartupTimeoutInSeconds; last: ${last})`,
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
        headersTimeoutMs: PING_TIMEOUT_MS,
        bodyTimeoutMs: PING_TIMEOUT_MS,
      });
      res.release();
      return res.status === 200 ? true : `HTTP ${res.status}`;
    } catch (e) {
      return describeError(e);
    }
  }

  /** GET /execution-parameters; undefined when the model does not offer it (any non-200 answer). */
  async executionParameters(): Promise<ParameterChoices | undefined> {
    try {
      const res = await this.pool.request({
        method: 'GET',
        path: '/execution-parameters',
        headersTimeoutMs: PING_TIMEOUT_MS * 5,
        bodyTimeoutMs: PING_TIMEOUT_MS * 5,
      });
      const text = textOf(res);
      if (res.status !== 200) return undefined;
      return modelParameterChoices(JSON.parse(text));
    } catch {
      return undefined;
    }
  }

  /**
   * POST /invocations once. Never throws for HTTP or network outcomes: the caller decides (retry,
   * halve the mini-batch, fail the object). The response body is always consumed or discarded.
   */
  async invokeOnce(
    body: Buffer | readonly Buffer[] | AsyncIterable<Buffer>,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<InvocationOutcome> {
    const started = performance.now();
    this.stats.invocations++;
    if (invocationStart.hasSubscribers) invocationStart.publish({ headers });
    try {
      // A mini-batch goes out as its slices of the input, written in order, never joined.
      const res = await this.pool.request({
        method: 'POST',
        path: '/invocations',
        body,
        headers,
        headersTimeoutMs: this.opts.invocationTimeoutMs,
        bodyTimeoutMs: this.opts.invocationTimeoutMs,
        signal,
      });
      const status = res.status;
      if (status >= 200 && status < 300) {
        this.stats.latencyMsTotal += performance.now() - started;
        this.stats.latencyCount++;
        return { kind: 'ok', status, body: res.body, byteLength: res.byteLength, release: res.release };
      }
      const text = textOf(res).trim().replace(/\s+/g, ' ');
      const message = `model answered HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`;
      if (status === 413) {
        this.stats.errors4xx++;
        return { kind: 'too-large', status: 413, message };
      }
      if (status >= 500 || status === 429) {
        this.stats.errors5xx += status >= 500 ? 1 : 0;
        this.stats.errors4xx += status === 429 ? 1 : 0;
        return { kind: 'server-error', status, message };
      }
      this.stats.errors4xx++;
      return { kind: 'client-error', status, message };
    } catch (e) {
      if (signal?.aborted) throw signal.reason ?? e;
      // The request body's own source failed (a streamed object's read or gunzip): its error.
      if (e instanceof HttpBodySourceError) throw e.cause;
      if (e instanceof HttpTimeoutError) {
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
      if (attempt >= this.opts.maxRetries) {
        if (attempt === 0) return outcome;
        const tries = `${outcome.message} (${attempt + 1} attempts, InvocationsMaxRetries ${this.opts.maxRetries})`;
        return { ...outcome, message: tries };
      }
      this.stats.retries++;
      const cap = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** attempt);
      await sleep(Math.random() * cap, undefined, opts.signal ? { signal: opts.signal } : undefined);
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  destroy(): void {
    this.pool.destroy();
  }
}

/** A small answer's body as text (error messages, JSON); its blocks go back to the pool. */
function textOf(res: Http1Response): string {
  const text = Buffer.concat(res.body as Buffer[], res.byteLength).toString('utf8');
  res.release();
  return text;
}

export function describeError(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err.code ?? err.cause?.code;
  const msg = err.message ?? String(e);
  return code && !msg.includes(code) ? `${code} ${msg}` : msg;
}
