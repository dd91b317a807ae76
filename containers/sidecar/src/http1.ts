import { connect, type Socket } from 'node:net';

/**
 * A small HTTP/1.1 client for the one connection pool the sidecar keeps: to the model container on
 * loopback. Hand-written because this is the hottest path of the data plane and the libraries cannot
 * do what makes it cheap: every response byte is read by the socket into one reused buffer per
 * connection (`net.connect({ onread })`) and copied once into blocks of a `BlockPool`, which the
 * caller hands back once the output is written. undici (and node:http) read each socket chunk into a
 * fresh Buffer, join and copy it again into their parser's memory, and leave ~1 GiB of garbage per
 * GiB transformed for the collector. Measured against undici's Pool on the echo model (6 MiB bodies,
 * 4 in flight, `npm run bench`): 0.6–0.8 against 1.7–2.0 CPU seconds per GiB (docs/PERFORMANCE.md).
 *
 * Scope, on purpose: plain `http:`, one request at a time per connection (no pipelining), bodies
 * as a Buffer, a list of Buffers (sent with Content-Length, replayable) or an async iterable (sent
 * chunked, once); responses framed by Content-Length, chunked transfer coding or the end of the
 * connection; 1xx answers skipped; keep-alive with idle connections reused. A request that fails on a
 * reused connection before any byte of its answer (the server closed an idle keep-alive connection
 * as we wrote) is sent once more on a new connection when its body can be sent again.
 */

/** Fixed-size Buffers handed out and taken back, so response bytes land in memory already owned. */
export class BlockPool {
  readonly #free: Buffer[] = [];
  constructor(
    readonly blockSize = 256 * 1024,
    /** Free blocks kept at most; more are left to the garbage collector. */
    readonly maxFree = 256,
  ) {}

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.blockSize);
  }

  give(blocks: readonly Buffer[]): void {
    for (const b of blocks) {
      if (this.#free.length >= this.maxFree) return;
      if (b.length === this.blockSize) this.#free.push(b);
    }
  }

  /** Blocks waiting to be reused. */
  get free(): number {
    return this.#free.length;
  }
}

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

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');
const MAX_HEAD_BYTES = 64 * 1024;
/** A reused connection failing this soon after the request went out was closed by the server before. */
const STALE_WINDOW_MS = 20;
const READ_BUFFER_BYTES = 64 * 1024;

export interface Http1PoolOptions {
  /** Connections at most; requests beyond wait for one to come free. */
  readonly connections: number;
  /** Idle connections are closed after this long. @default 30000 */
  readonly keepAliveMs?: number;
  readonly blocks?: BlockPool;
}

export class Http1Pool {
  readonly blocks: BlockPool;
  readonly #host: string;
  readonly #port: number;
  readonly #hostHeader: string;
  readonly #max: number;
  readonly #keepAliveMs: number;
  readonly #idle: Connection[] = [];
  /** Requests waiting for a connection, oldest first: handed a free one, or woken to open one. */
  readonly #waiting: Array<(conn?: Connection) => void> = [];
  #open = 0;
  #closed = false;

  constructor(origin: string, opts: Http1PoolOptions) {
    const url = new URL(origin);
    if (url.protocol !== 'http:') throw new Error(`the model URL must be http://host:port, not ${origin}`);
    this.#host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.#port = Number(url.port || 80);
    this.#hostHeader = url.host;
    this.#max = Math.max(1, opts.connections);
    this.#keepAliveMs = opts.keepAliveMs ?? 30_000;
    this.blocks = opts.blocks ?? new BlockPool();
  }

  /** Connections open now (busy or idle). */
  get openConnections(): number {
    return this.#open;
  }

  async request(req: Http1Request): Promise<Http1Response> {
    const replayable = !isAsyncIterable(req.body);
    let conn = await this.#acquire(req.signal);
    try {
      return await this.#exchange(conn, req);
    } catch (e) {
      // The server may close an idle connection just as we reuse it: send once more on a new one.
      if (!(e instanceof StaleConnectionError) || !replayable) throw unwrapStale(e);
      conn = await this.#acquire(req.signal, true);
      return await this.#exchange(conn, req).catch((err: unknown) => {
        throw unwrapStale(err);
      });
    }
  }

  /** Closes idle connections now and the others as their requests end. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) c.destroy();
    for (const w of this.#waiting.splice(0)) w();
  }

  destroy(): void {
    void this.close();
  }

  async #exchange(conn: Connection, req: Http1Request): Promise<Http1Response> {
    let reusable = false;
    let idleMs = 0;
    try {
      const r = await conn.exchange(req, this.#hostHeader);
      reusable = r.reusable;
      // A server that says how long it keeps idle connections (`Keep-Alive: timeout=5`, as
      // node:http does) gets them closed by us a second before, so we never write into its close.
      idleMs = Math.min(this.#keepAliveMs, r.serverIdleMs - 1000);
      return r.response;
    } finally {
      if (reusable && idleMs > 0 && !this.#closed && !conn.destroyed) this.#park(conn, idleMs);
      else conn.destroy();
    }
  }

  /** A free connection goes to the request waiting longest, or waits idle for the next one. */
  #park(conn: Connection, idleMs: number): void {
    conn.idleMs = idleMs;
    const next = this.#waiting.shift();
    if (next) next(conn);
    else {
      conn.idle(idleMs);
      this.#idle.push(conn);
    }
  }

  async #acquire(signal: AbortSignal | undefined, fresh = false): Promise<Connection> {
    let woken = false;
    for (;;) {
      if (this.#closed) throw new HttpConnectionError('the connection pool is closed', 'ECONNRESET');
      if (signal?.aborted) {
        // A wake-up meant for this request passes to the next one waiting, or it would be lost.
        if (woken) this.#waiting.shift()?.();
        throw signal.reason;
      }
      if (!fresh) {
        const idle = this.#idle.pop();
        if (idle) return idle.reuse();
      } else if (this.#open >= this.#max) {
        // A fresh connection is wanted but the pool is full: close an idle one to make room.
        this.#idle.shift()?.destroy();
      }
      if (this.#open < this.#max) {
        this.#open++;
        return new Connection(this.#host, this.#port, this.blocks, (c) => this.#gone(c));
      }
      // Wait for a connection to come free; an abort meanwhile leaves the queue at once.
      const handed = await new Promise<Connection | undefined>((resolve, reject) => {
        const onAbort = () => {
          const i = this.#waiting.indexOf(wake);
          if (i >= 0) this.#waiting.splice(i, 1);
          reject(signal?.reason);
        };
        const wake = (conn?: Connection) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(conn);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#waiting.push(wake);
      });
      if (handed) {
        // Aborted since it was handed over: it goes to the next in line. Wanted fresh (a stale
        // retry): close it, which makes room for a new one.
        if (signal?.aborted) {
          this.#park(handed, handed.idleMs);
          throw signal.reason;
        }
        if (!fresh) return handed.reuse();
        handed.destroy();
        continue;
      }
      woken = true;
    }
  }

  /** Runs once per connection, when it is destroyed for whatever reason. */
  #gone(conn: Connection): void {
    const i = this.#idle.indexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    this.#open--;
    this.#waiting.shift()?.();
  }
}

/** Internal: the request failed on a reused connection before any byte of the answer. */
class StaleConnectionError extends Error {
  constructor(readonly inner: unknown) {
    super('stale keep-alive connection');
  }
}

const unwrapStale = (e: unknown) => (e instanceof StaleConnectionError ? e.inner : e);

type BodyFraming = 'length' | 'chunked' | 'close' | 'none';
type ParseState = 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'done';

/** One keep-alive connection: a socket reading into a reused buffer, and the exchange on it. */
class Connection {
  readonly #socket: Socket;
  readonly #blocks: BlockPool;
  readonly #onGone: (c: Connection) => void;
  #connected = false;
  #reused = false;
  #destroyed = false;
  #idleTimer: NodeJS.Timeout | undefined;
  #active: Exchange | undefined;
  /** How long it may stay idle, from its last answer. */
  idleMs = 0;

  constructor(host: string, port: number, blocks: BlockPool, onGone: (c: Connection) => void) {
    this.#blocks = blocks;
    this.#onGone = onGone;
    // Every read lands in this one buffer; the parser copies body bytes out at once.
    const readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    this.#socket = connect({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: readBuffer,
        callback: (n: number, buf: Uint8Array) => {
          this.#onData(buf as Buffer, n);
          return true;
        },
      },
    });
    this.#socket.once('connect', () => {
      this.#connected = true;
    });
    this.#socket.on('error', (e: NodeJS.ErrnoException) => this.#onEnd(e));
    this.#socket.on('end', () => this.#onEnd(undefined));
    this.#socket.on('close', () => this.#onEnd(undefined));
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  reuse(): this {
    clearTimeout(this.#idleTimer);
    this.#reused = true;
    return this;
  }

  idle(ms: number): void {
    this.#idleTimer = setTimeout(() => this.destroy(), ms);
    this.#idleTimer.unref();
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    clearTimeout(this.#idleTimer);
    this.#socket.destroy();
    this.#onGone(this);
  }

  exchange(
    req: Http1Request,
    hostHeader: string,
  ): Promise<{ response: Http1Response; reusable: boolean; serverIdleMs: number }> {
    if (this.#destroyed) {
      const err = new HttpConnectionError('the connection closed while idle', 'ECONNRESET');
      return Promise.reject(this.#reused ? new StaleConnectionError(err) : err);
    }
    return new Promise((resolve, reject) => {
      const x = new Exchange(req, this.#blocks, this.#reused, reject);
      this.#active = x;
      x.onResponse = (response, keepAlive) => {
        this.#active = undefined;
        // Reusable only when the whole request has gone out: an answer can come early (a 413
        // before the body is read), and the rest of the body must not reach the next exchange.
        resolve({
          response,
          reusable: keepAlive && x.bodyWritten && this.#socket.writableLength === 0,
          serverIdleMs: x.serverIdleMs,
        });
      };
      x.onAbort = (e) => {
        this.#active = undefined;
        this.destroy();
        x.fail(e);
      };
      x.start();
      if (!x.settled) void this.#send(req, hostHeader, x);
    });
  }

  async #send(req: Http1Request, hostHeader: string, x: Exchange): Promise<void> {
    const s = this.#socket;
    const body = req.body;
    if (!/^[A-Z]+$/.test(req.method) || !/^\/[^\s]*$/.test(req.path)) {
      x.onAbort(new TypeError(`invalid request line ${JSON.stringify(`${req.method} ${req.path}`)}`));
      return;
    }
    let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
    let hasHost = false;
    for (const [name, value] of Object.entries(req.headers ?? {})) {
      if (/[\r\n:]/.test(name) || /[\r\n]/.test(value)) {
        x.onAbort(new TypeError(`invalid request header ${JSON.stringify(name)}`));
        return;
      }
      const lower = name.toLowerCase();
      if (lower === 'host') hasHost = true;
      // The body's framing is ours to say: it follows from the kind of body, whatever a caller set.
      if (lower === 'content-length' || lower === 'transfer-encoding') continue;
      head += `${name}: ${value}\r\n`;
    }
    if (!hasHost) head += `host: ${hostHeader}\r\n`;
    const streamed = isAsyncIterable(body);
    head += streamed
      ? 'transfer-encoding: chunked\r\n'
      : `content-length: ${body === undefined ? 0 : byteLengthOf(body)}\r\n`;
    head += '\r\n';
    if (!streamed) {
      // One writev for the head and every part: the parts are slices of the input, never joined.
      const parts =
        body === undefined ? [] : Buffer.isBuffer(body) ? [body] : body.filter((p) => p.length > 0);
      s.cork();
      if (parts.length === 0) s.write(head, 'latin1', x.flushed);
      else s.write(head, 'latin1');
      for (let k = 0; k < parts.length; k++)
        s.write(parts[k]!, k === parts.length - 1 ? x.flushed : undefined);
      s.uncork();
      x.bodyWritten = true;
      return;
    }
    try {
      s.write(head, 'latin1');
      for await (const chunk of body) {
        if (x.settled || this.#destroyed) return;
        if (chunk.length === 0) continue;
        s.cork();
        s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        s.write(chunk);
        const room = s.write(CRLF);
        s.uncork();
        // The body is coming (its source may be slow: an S3 read, a gunzip): the model is not late.
        x.uploadProgress();
        if (!room) await this.#drained();
      }
      if (x.settled || this.#destroyed) return;
      s.write(LAST_CHUNK, x.flushed);
      x.bodyWritten = true;
    } catch (e) {
      // The body's own source failed, not the connection: report its error as it is.
      if (!x.settled) x.onAbort(new HttpBodySourceError(describe(e), { cause: e }));
    }
  }

  /** Resolves when the socket can take more, or is gone (the exchange then reports why). */
  #drained(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  #onData(buf: Buffer, n: number): void {
    const x = this.#active;
    // Bytes nobody asked for: the connection cannot be trusted any more.
    if (!x) this.destroy();
    else x.feed(buf, n);
  }

  #onEnd(error: NodeJS.ErrnoException | undefined): void {
    const x = this.#active;
    this.#active = undefined;
    if (x) x.connectionEnded(error, this.#connected);
    this.destroy();
  }
}

/** One request and its response on a connection. */
class Exchange {
  settled = false;
  /** Set once the last byte of the request has been handed to the socket. */
  bodyWritten = false;
  onResponse: (r: Http1Response, keepAlive: boolean) => void = () => {};
  onAbort: (e: unknown) => void = () => {};
  /** How long the server keeps an idle connection, from its `Keep-Alive: timeout=N` header. */
  serverIdleMs = Number.POSITIVE_INFINITY;
  /** When the last byte of the request was handed to the kernel (undefined: not yet). */
  #flushedAt: number | undefined;
  #state: ParseState = 'head';
  #head = '';
  #status = 0;
  #headers: Record<string, string> = {};
  #framing: BodyFraming = 'none';
  #remaining = 0;
  #line = '';
  #crlfLeft = 0;
  #blocks: Buffer[] = [];
  #blockUsed = 0;
  #byteLength = 0;
  #closeAfter = false;
  #anyResponseByte = false;
  #timer: NodeJS.Timeout | undefined;
  #abortListener: (() => void) | undefined;

  constructor(
    private readonly req: Http1Request,
    private readonly pool: BlockPool,
    private readonly reused: boolean,
    private readonly reject: (e: unknown) => void,
  ) {}

  start(): void {
    const { signal } = this.req;
    if (signal) {
      if (signal.aborted) {
        this.onAbort(signal.reason);
        return;
      }
      this.#abortListener = () => this.onAbort(signal.reason);
      signal.addEventListener('abort', this.#abortListener, { once: true });
    }
    this.#timer = setTimeout(() => this.onAbort(new HttpTimeoutError('headers')), this.req.headersTimeoutMs);
  }

  /**
   * The whole request has gone out: the headers timeout starts again from here, so it measures the
   * model's answer and not the upload (as undici's does).
   */
  readonly flushed = (err?: Error | null): void => {
    if (err) return; // the socket's 'error' reports it
    this.#flushedAt = performance.now();
    if (this.settled || this.#state !== 'head') return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.onAbort(new HttpTimeoutError('headers')), this.req.headersTimeoutMs);
  };

  /** A piece of a streamed body went out: the wait for the answer has not begun yet. */
  uploadProgress(): void {
    if (!this.settled && this.#state === 'head') this.#timer?.refresh();
  }

  #cleanup(): void {
    clearTimeout(this.#timer);
    if (this.#abortListener) this.req.signal?.removeEventListener('abort', this.#abortListener);
  }

  fail(e: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.#cleanup();
    this.pool.give(this.#blocks);
    this.#blocks = [];
    this.reject(e);
  }

  connectionEnded(error: NodeJS.ErrnoException | undefined, connected: boolean): void {
    if (this.settled) return;
    if (this.#framing === 'close' && this.#state === 'body' && !error) {
      this.#state = 'done';
      this.#finish();
      return;
    }
    const why = error
      ? describe(error)
      : connected
        ? 'the server closed the connection before the response was complete'
        : 'the connection closed before it was established';
    const err = new HttpConnectionError(why, error?.code ?? 'ECONNRESET', { cause: error });
    // Stale: the server had closed the idle connection as we reused it. Its reset comes back at once;
    // a failure long after the request went out is the model's (a worker that died on it), which
    // the caller's retry policy decides about, so the request is not sent again behind its back.
    const early = this.#flushedAt === undefined || performance.now() - this.#flushedAt < STALE_WINDOW_MS;
    this.fail(this.reused && !this.#anyResponseByte && early ? new StaleConnectionError(err) : err);
  }

  /** Parses `n` bytes of `buf` (the connection's reused read buffer: copy what must be kept). */
  feed(read: Buffer, n: number): void {
    if (this.settled) return;
    this.#anyResponseByte = true;
    // A view of what this read filled, so searches stop at its end.
    const buf = read.subarray(0, n);
    let i = 0;
    try {
      while (i < n) {
        switch (this.#state) {
          case 'head':
            i = this.#feedHead(buf, i, n);
            break;
          case 'body': {
            const take = this.#framing === 'close' ? n - i : Math.min(n - i, this.#remaining);
            this.#append(buf, i, take);
            i += take;
            if (this.#framing === 'length') {
              this.#remaining -= take;
              if (this.#remaining === 0) this.#state = 'done';
            }
            break;
          }
          case 'chunk-size': {
            const line = this.#readLine(buf, i, n, 1024, 'a chunk size line is too long');
            i = line.next;
            if (line.text === undefined) break;
            const hex = line.text.split(';')[0]!.trim();
            if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw protocolError(`bad chunk size "${hex}"`);
            this.#remaining = Number.parseInt(hex, 16);
            this.#state = this.#remaining === 0 ? 'trailers' : 'chunk-data';
            break;
          }
          case 'chunk-data': {
            const take = Math.min(n - i, this.#remaining);
            this.#append(buf, i, take);
            i += take;
            this.#remaining -= take;
            if (this.#remaining === 0) {
              this.#state = 'chunk-crlf';
              this.#crlfLeft = 2;
            }
            break;
          }
          case 'chunk-crlf': {
            // CRLF after the chunk's data, or a bare LF.
            const byte = buf[i];
            if (this.#crlfLeft === 2 && byte === 13) this.#crlfLeft = 1;
            else if (byte === 10) this.#crlfLeft = 0;
            else throw protocolError('a chunk does not end with CRLF');
            i++;
            if (this.#crlfLeft === 0) this.#state = 'chunk-size';
            break;
          }
          case 'trailers': {
            // Trailer lines until an empty one; their content is ignored.
            const line = this.#readLine(buf, i, n, MAX_HEAD_BYTES, 'the trailers are too long');
            i = line.next;
            if (line.text === '') this.#state = 'done';
            break;
          }
          case 'done':
            // More bytes than the response: the connection is not reusable.
            this.#closeAfter = true;
            i = n;
            break;
        }
      }
    } catch (e) {
      this.onAbort(e);
      return;
    }
    if (this.#state === 'done') this.#finish();
    else if (this.#state !== 'head') this.#timer?.refresh();
  }

  /**
   * Reads `buf` from `i` up to the next LF into the line in progress (lines may straddle reads).
   * `text` is the whole line without its CR LF once the LF has come, else undefined.
   */
  #readLine(
    buf: Buffer,
    i: number,
    n: number,
    max: number,
    tooLong: string,
  ): { next: number; text?: string } {
    const lf = buf.indexOf(10, i);
    const end = lf < 0 ? n : lf;
    this.#line += buf.toString('latin1', i, end);
    if (this.#line.length > max) throw protocolError(tooLong);
    if (lf < 0) return { next: end };
    const text = this.#line.endsWith('\r') ? this.#line.slice(0, -1) : this.#line;
    this.#line = '';
    return { next: lf + 1, text };
  }

  #feedHead(buf: Buffer, from: number, n: number): number {
    const text = buf.toString('latin1', from, n);
    const before = this.#head.length;
    this.#head += text;
    // The end of the head may straddle reads: search from just before what is new. Lines may end
    // with a bare LF as well as CRLF (RFC 9112 lets a recipient accept it; some servers send it).
    const from3 = Math.max(0, before - 3);
    const crlf = this.#head.indexOf('\r\n\r\n', from3);
    const lf = this.#head.indexOf('\n\n', from3);
    const end = crlf < 0 ? lf : lf < 0 ? crlf : Math.min(crlf, lf);
    if (end < 0) {
      if (this.#head.length > MAX_HEAD_BYTES) throw protocolError('the response headers are too long');
      return n;
    }
    const consumed = end + (end === crlf ? 4 : 2) - before;
    const head = this.#head.slice(0, end);
    this.#head = '';
    this.#parseHead(head);
    return from + consumed;
  }

  #parseHead(head: string): void {
    const lines = head.split(/\r?\n/);
    const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]!);
    if (!m) throw protocolError(`not an HTTP/1.x status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const status = Number(m[2]);
    const headers: Record<string, string> = {};
    for (let k = 1; k < lines.length; k++) {
      const line = lines[k]!;
      const colon = line.indexOf(':');
      if (colon <= 0) throw protocolError(`a malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    // 1xx answers (100 Continue, 103 Early Hints) come before the real one.
    if (status >= 100 && status < 200) return;
    this.#status = status;
    this.#headers = headers;
    const connection = (headers.connection ?? '').toLowerCase();
    const hint = /timeout\s*=\s*(\d+)/i.exec(headers['keep-alive'] ?? '');
    if (hint) this.serverIdleMs = Number(hint[1]) * 1000;
    this.#closeAfter = m[1] === '0' ? !connection.includes('keep-alive') : connection.includes('close');
    const te = (headers['transfer-encoding'] ?? '').toLowerCase();
    if (this.req.method === 'HEAD' || status === 204 || status === 304) {
      this.#framing = 'none';
      this.#state = 'done';
    } else if (te !== '') {
      // Only plain chunked: a coding under it (gzip, chunked) would hand over encoded bytes.
      if (te.trim() !== 'chunked') throw protocolError(`unsupported transfer-encoding "${te}"`);
      this.#framing = 'chunked';
      this.#state = 'chunk-size';
    } else if (headers['content-length'] !== undefined) {
      // Repeated headers arrive joined ("10, 10"): allowed when every value is the same (RFC 9110).
      const cl = headers['content-length'];
      const values = new Set(cl.split(',').map((v) => v.trim()));
      const [value] = values;
      if (values.size !== 1 || !/^\d{1,15}$/.test(value!)) throw protocolError(`bad content-length "${cl}"`);
      this.#remaining = Number(value);
      this.#framing = 'length';
      this.#state = this.#remaining === 0 ? 'done' : 'body';
    } else {
      this.#framing = 'close';
      this.#closeAfter = true;
      this.#state = 'body';
    }
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.onAbort(new HttpTimeoutError('body')), this.req.bodyTimeoutMs);
  }

  /** Copies `len` bytes of `buf` from `at` into the response's blocks. */
  #append(buf: Buffer, at: number, len: number): void {
    const size = this.pool.blockSize;
    this.#byteLength += len;
    while (len > 0) {
      if (this.#blocks.length === 0 || this.#blockUsed === size) {
        this.#blocks.push(this.pool.take());
        this.#blockUsed = 0;
      }
      const block = this.#blocks[this.#blocks.length - 1]!;
      const k = Math.min(len, size - this.#blockUsed);
      buf.copy(block, this.#blockUsed, at, at + k);
      this.#blockUsed += k;
      at += k;
      len -= k;
    }
  }

  #finish(): void {
    if (this.settled) return;
    this.settled = true;
    this.#cleanup();
    const blocks = this.#blocks;
    const last = blocks.length - 1;
    const body = blocks.map((b, k) => (k < last ? b : b.subarray(0, this.#blockUsed)));
    const pool = this.pool;
    let released = false;
    this.onResponse(
      {
        status: this.#status,
        headers: this.#headers,
        body,
        byteLength: this.#byteLength,
        release: () => {
          if (released) return;
          released = true;
          pool.give(blocks);
        },
      },
      !this.#closeAfter,
    );
  }
}

function protocolError(message: string): HttpConnectionError {
  return new HttpConnectionError(`the model broke HTTP/1.1: ${message}`, 'HPE_INVALID');
}

function isAsyncIterable(body: Http1Request['body']): body is AsyncIterable<Buffer> {
  return (
    body !== undefined &&
    !Buffer.isBuffer(body) &&
    !Array.isArray(body) &&
    typeof (body as AsyncIterable<Buffer>)[Symbol.asyncIterator] === 'function'
  );
}

function byteLengthOf(body: Buffer | readonly Buffer[]): number {
  if (Buffer.isBuffer(body)) return body.length;
  let n = 0;
  for (const b of body) n += b.length;
  return n;
}

function describe(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return err?.message ?? String(e);
}
