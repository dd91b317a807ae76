import { connect, type Socket } from 'node:net';
import type { BlockPool } from './block-pool';
import { Exchange } from './exchange';
import {
  describe,
  type Http1Request,
  type Http1Response,
  HttpBodySourceError,
  HttpConnectionError,
  isAsyncIterable,
  StaleConnectionError,
} from './types';

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');
const READ_BUFFER_BYTES = 64 * 1024;

/** One keep-alive connection: a socket reading into a reused buffer, and the exchange on it. */
export class Connection {
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

function byteLengthOf(body: Buffer | readonly Buffer[]): number {
  if (Buffer.isBuffer(body)) return body.length;
  let n = 0;
  for (const b of body) n += b.length;
  return n;
}
