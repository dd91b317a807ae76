import type { BlockPool } from './block-pool';
import {
  describe,
  type Http1Request,
  type Http1Response,
  HttpConnectionError,
  HttpTimeoutError,
  StaleConnectionError,
} from './types';

const MAX_HEAD_BYTES = 64 * 1024;
/**
 * A reused connection failing this soon after the request went out was closed by the server before.
 * The server's FIN is usually read in the same turn of the event loop, but on a loaded machine it
 * came 20+ ms later (a flaky test at load 10 on 2 cores); a model that dies this soon on a request
 * would have it sent again by the retry policy anyway (connection errors are retried).
 */
const STALE_WINDOW_MS = 100;

type BodyFraming = 'length' | 'chunked' | 'close' | 'none';
type ParseState = 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'done';

/** One request and its response on a connection. */
export class Exchange {
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
