/**
 * What the client's parts share: the request and response shapes, the errors a request can end
 * with, and small helpers about them. `StaleConnectionError` stays inside the folder.
 */

export interface Http1Request {
  readonly method: string;
  /** Path and query, e.g. `/invocations`. */
  readonly path: string;
  /**
   * Lower- or mixed-case names. `host` is added when absent; the framing header is always the
   * client's own (`content-length` for a Buffer or a list, `transfer-encoding: chunked` for an
   * iterable): a caller's `content-length` or `transfer-encoding` is left out.
   */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer | readonly Buffer[] | AsyncIterable<Buffer>;
  /** From the request's start until the response's headers. */
  readonly headersTimeoutMs: number;
  /** Longest silence while the response body arrives. */
  readonly bodyTimeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

export interface Http1Response {
  readonly status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  /** The body as views into pool blocks, in order. Valid until `release()`. */
  readonly body: readonly Buffer[];
  readonly byteLength: number;
  /** Hands the body's blocks back to the pool: call once nothing refers to `body` any more. */
  release(): void;
}

/** No answer in time: `phase` says whether the headers or the body were late. */
export class HttpTimeoutError extends Error {
  override readonly name = 'HttpTimeoutError';
  constructor(readonly phase: 'headers' | 'body') {
    super(`no ${phase === 'headers' ? 'response' : 'response data'} in time`);
  }
}

/** The connection failed or the server broke the protocol; `code` as Node's socket errors have it. */
export class HttpConnectionError extends Error {
  override readonly name = 'HttpConnectionError';
  constructor(
    message: string,
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The request body's own source failed (not the connection): its error is kept as `cause`. */
export class HttpBodySourceError extends Error {
  override readonly name = 'HttpBodySourceError';
}

/** Internal: the request failed on a reused connection before any byte of the answer. */
export class StaleConnectionError extends Error {
  constructor(readonly inner: unknown) {
    super('stale keep-alive connection');
  }
}

export const unwrapStale = (e: unknown) => (e instanceof StaleConnectionError ? e.inner : e);

export function isAsyncIterable(body: Http1Request['body']): body is AsyncIterable<Buffer> {
  return (
    body !== undefined &&
    !Buffer.isBuffer(body) &&
    !Array.isArray(body) &&
    typeof (body as AsyncIterable<Buffer>)[Symbol.asyncIterator] === 'function'
  );
}

export function describe(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return err?.message ?? String(e);
}
