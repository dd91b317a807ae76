import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { connect as connectTls } from 'node:tls';
import { crc32 } from 'node:zlib';
import type { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { buildQueryString } from '@smithy/core/protocols';
import { LentBuffers } from './common';
import type { PooledRead } from './storage';

/**
 * GetObject bodies read straight into reused buffers, for S3Storage.readPooled.
 *
 * Why not the SDK's HTTP client: it hands a body over as Node's IncomingMessage, whose every socket
 * read is a fresh Buffer: garbage the collector must find, a Buffer per input byte. In the
 * benchmark's S3 job that garbage and the stream machinery around it cost a share of the sidecar's CPU
 * file:// had already shed with its pooled reader (docs/PERFORMANCE.md, "s3CpuSecondsPerGiB").
 * Here the socket reads (`onread`, TCP or TLS) land in blocks the reader owns, and the caller gives
 * them back through `release`, as with FileStorage.readPooled.
 *
 * Only the transfer is ours. The request is the SDK's: built, signed and retried by the client's
 * own middleware; a middleware placed after signing sends it on our socket instead of the SDK's
 * handler. An answer other than 2xx is read whole and handed back to the SDK, which turns it into
 * its usual error (NoSuchKey, InvalidRange, a 503 it retries). What is not served: a 2xx body
 * without Content-Length (S3 always sends one for GetObject), proxies, a client's custom request
 * handler. A whole object's `x-amz-checksum-crc32` is verified (native zlib.crc32), as the SDK's
 * response validation would; its other algorithms (CRC32C, CRC64NVME, SHA) are left to TLS.
 */

/** Bytes per block, as FileStorage reads (READ_CHUNK there: the packer's sweet spot). */
const BLOCK = 256 * 1024;
/** Full blocks read ahead of the caller before the socket is paused. */
const READ_AHEAD = 1;
const MAX_HEAD_BYTES = 64 * 1024;
/** Socket reads land in one buffer this big; body bytes are copied out into blocks at once. */
const READ_BUFFER = 64 * 1024;
/** Idle keep-alive connections are dropped after this long (S3 closes idle ones after ~20 s). */
const IDLE_MS = 4_000;
const MAX_IDLE_PER_ORIGIN = 16;

interface SignedRequest {
  readonly protocol: string;
  readonly hostname: string;
  readonly port?: number;
  readonly method: string;
  readonly path: string;
  readonly query?: Record<string, string | string[] | null>;
  readonly headers: Record<string, string>;
}

/** A socket whose reads go to whichever transfer is using it now. */
interface PooledSocket {
  readonly socket: Socket;
  readonly origin: string;
  /** Every read of the socket lands here (onread takes one buffer per socket). */
  readonly readBuffer: Buffer;
  /** The first `n` bytes of readBuffer just arrived; false pauses the socket. */
  onBytes: (n: number) => boolean;
  onEnd: (err: Error | undefined) => void;
  idleTimer?: NodeJS.Timeout | undefined;
  /** The socket's silence limit while it is expected to talk (off while we hold it paused). */
  readonly timeoutMs: number;
}

export class PooledGetter {
  readonly #idle = new Map<string, PooledSocket[]>();
  constructor(readonly socketTimeoutMs: number) {}

  #connect(req: SignedRequest): PooledSocket {
    const tls = req.protocol === 'https:';
    // An IPv6 literal comes bracketed ([::1]); sockets want it bare, and TLS takes no IP as a name.
    const host = req.hostname.replace(/^\[|\]$/g, '');
    const literal = isIP(host) !== 0;
    const port = req.port ?? (tls ? 443 : 80);
    const origin = `${req.protocol}//${req.hostname}:${port}`;
    const ps: PooledSocket = {
      socket: undefined as unknown as Socket,
      origin,
      readBuffer: Buffer.allocUnsafeSlow(READ_BUFFER),
      onBytes: () => true,
      onEnd: () => {},
      timeoutMs: this.socketTimeoutMs,
    };
    const onread = { buffer: ps.readBuffer, callback: (n: number) => ps.onBytes(n) };
    const socket = tls
      ? connectTls({ host, port, ...(literal ? {} : { servername: host }), onread } as never)
      : connectTcp({ host, port, noDelay: true, onread });
    (ps as { socket: Socket }).socket = socket;
    socket.setTimeout(this.socketTimeoutMs, () =>
      socket.destroy(
        Object.assign(new Error(`socket silent for ${this.socketTimeoutMs} ms`), { name: 'TimeoutError' }),
      ),
    );
    socket.on('error', (e) => ps.onEnd(e));
    socket.on('end', () => ps.onEnd(connectionClosed()));
    socket.on('close', () => ps.onEnd(connectionClosed()));
    return ps;
  }

  #take(origin: string): PooledSocket | undefined {
    const list = this.#idle.get(origin);
    for (let s = list?.pop(); s; s = list?.pop()) {
      clearTimeout(s.idleTimer);
      if (!s.socket.destroyed) {
        s.socket.ref();
        return s;
      }
    }
    return undefined;
  }

  #giveBack(ps: PooledSocket): void {
    const list = this.#idle.get(ps.origin) ?? [];
    if (list.length >= MAX_IDLE_PER_ORIGIN || ps.socket.destroyed) {
      ps.socket.destroy();
      return;
    }
    ps.onBytes = () => {
      ps.socket.destroy(); // a server talks on an idle connection only to close it
      return false;
    };
    ps.onEnd = () => {};
    ps.socket.unref(); // an idle connection keeps no process alive
    ps.idleTimer = setTimeout(() => ps.socket.destroy(), IDLE_MS);
    ps.idleTimer.unref();
    list.push(ps);
    this.#idle.set(ps.origin, list);
  }

  /**
   * Sends `command` through `client` (signing, retries, errors: the SDK's) with the transfer on our
   * socket; resolves to the body as a PooledRead once a 2xx answer's head has arrived.
   */
  async get(
    client: S3Client,
    command: GetObjectCommand,
    signal?: AbortSignal,
  ): Promise<PooledRead & { base: number }> {
    let transfer: PooledTransfer | undefined;
    const transferOnOurSocket =
      (next: (args: { request: SignedRequest }) => Promise<unknown>) =>
      async (args: { request: SignedRequest }) => {
        transfer?.destroy(new Error('superseded by a retry'));
        transfer = undefined;
        const t = await this.#send(args.request, signal);
        if (t.status >= 200 && t.status < 300) {
          transfer = t;
          return {
            response: { statusCode: t.status, headers: t.headers, body: Readable.from([]) },
            output: { $metadata: {} },
          };
        }
        // An error answer (S3 sends them chunked, on a connection it keeps open) goes to the SDK's
        // own handler: the same signed request again, read and parsed as the SDK reads any error.
        // Errors are rare; this path need not be fast.
        t.destroy(new Error('an error answer, read through the SDK'));
        return next(args);
      };
    // Innermost, where the SDK's HTTP handler would be called: after signing (inside the retry
    // middleware, so every attempt is signed and sent anew) and inside the deserializer, which turns
    // an error answer into the SDK's error as usual.
    command.middlewareStack.add(transferOnOurSocket as never, {
      step: 'deserialize',
      priority: 'low',
      name: 'pooledGetTransfer',
    });
    try {
      await client.send(command, { abortSignal: signal });
    } catch (err) {
      (transfer as PooledTransfer | undefined)?.destroy(err as Error);
      throw err;
    }
    if (!transfer) throw new Error('GetObject answered without a body');
    return transfer;
  }

  /** Sends the request; a reused connection that fails before any answer byte is retried on a new one. */
  async #send(req: SignedRequest, signal: AbortSignal | undefined): Promise<PooledTransfer> {
    const origin = `${req.protocol}//${req.hostname}:${req.port ?? (req.protocol === 'https:' ? 443 : 80)}`;
    const reused = this.#take(origin);
    if (reused) {
      try {
        return await new PooledTransfer(reused, true, req, signal, (ps) => this.#giveBack(ps)).started;
      } catch (err) {
        if (!(err instanceof StaleConnectionError)) throw err;
      }
    }
    // On a new connection, the socket's own error (with its code) is what the SDK retries on.
    return new PooledTransfer(this.#connect(req), false, req, signal, (ps) => this.#giveBack(ps)).started;
  }

  close(): void {
    for (const list of this.#idle.values()) for (const ps of list) ps.socket.destroy();
    this.#idle.clear();
  }
}

/** A reused connection that failed before any byte of the answer: the server had closed it. */
class StaleConnectionError extends Error {}

/** ECONNRESET, so the SDK's retry strategy takes it as transient. */
const connectionClosed = () =>
  Object.assign(new Error('the connection closed before the answer ended'), { code: 'ECONNRESET' });

/** One GetObject on one connection: the head, then the body into pooled blocks. */
class PooledTransfer implements PooledRead {
  status = 0;
  headers: Record<string, string> = {};
  readonly started: Promise<PooledTransfer>;
  #resolveStarted!: (t: PooledTransfer) => void;
  #rejectStarted!: (e: unknown) => void;
  #headDone = false;
  /** The answer head while it arrives. */
  #head: Buffer | undefined;
  #anyByte = false;
  /** Body bytes still to come. */
  #remaining = 0;
  #closeAfter = false;
  /** The block being filled, and how much of it is. */
  #block: Buffer | undefined;
  #filled = 0;
  /** Views ready for the caller, and the absolute end offset of each yielded one. */
  readonly #ready: Buffer[] = [];
  readonly #buffers = new LentBuffers();
  /** Body bytes handed to #ready so far. */
  #pushed = 0;
  /** The object offset of the body's first byte (the range's start), for `release`. */
  base = 0;
  #paused = false;
  #done = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  #crc = 0;
  #expectedCrc: string | undefined;
  #onAbort: (() => void) | undefined;

  constructor(
    private readonly ps: PooledSocket,
    private readonly reused: boolean,
    req: SignedRequest,
    private readonly signal: AbortSignal | undefined,
    private readonly giveBack: (ps: PooledSocket) => void,
  ) {
    this.started = new Promise((resolve, reject) => {
      this.#resolveStarted = resolve;
      this.#rejectStarted = reject;
    });
    this.started.catch(() => {});
    ps.onBytes = (n) => this.#onBytes(n);
    ps.onEnd = (err) => this.#fail(err ?? connectionClosed());
    if (signal) {
      if (signal.aborted) {
        this.#fail(signal.reason as Error);
        return;
      }
      this.#onAbort = () => this.destroy(signal.reason as Error);
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    const query = req.query ? buildQueryString(req.query) : '';
    let head = `${req.method} ${req.path}${query ? `?${query}` : ''} HTTP/1.1\r\n`;
    const headers = { ...req.headers };
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'host')) {
      headers.host = req.port ? `${req.hostname}:${req.port}` : req.hostname;
    }
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    ps.socket.write(`${head}\r\n`);
  }

  /** The block being filled, a reused one or new. */
  #blockToFill(left: number): Buffer {
    if (!this.#block) {
      // The object's last bytes get a block their size: a partition may read thousands of small objects.
      this.#block = this.#buffers.reuse() ?? Buffer.allocUnsafeSlow(Math.max(1, Math.min(BLOCK, left)));
      this.#filled = 0;
    }
    return this.#block;
  }

  #onBytes(n: number): boolean {
    if (n <= 0) return true;
    this.#anyByte = true;
    let bytes = this.ps.readBuffer.subarray(0, n);
    if (!this.#headDone) {
      this.#head = this.#head ? Buffer.concat([this.#head, bytes]) : Buffer.from(bytes);
      const end = this.#head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.#head.length >= MAX_HEAD_BYTES) this.#fail(new Error('the answer head is too large'));
        return true;
      }
      const head = this.#head;
      this.#head = undefined;
      if (!this.#parseHead(head.toString('latin1', 0, end))) return false;
      bytes = head.subarray(end + 4);
    }
    if (bytes.length > this.#remaining) {
      this.#fail(new Error('the server sent more than Content-Length'));
      return false;
    }
    const left = this.#remaining; // body bytes to come, these included
    this.#remaining -= bytes.length;
    if (this.#expectedCrc !== undefined) this.#crc = crc32(bytes, this.#crc);
    for (let at = 0; at < bytes.length; ) {
      const block = this.#blockToFill(left - at);
      const copied = bytes.copy(block, this.#filled, at);
      this.#filled += copied;
      at += copied;
      if (this.#filled === block.length) this.#hand(block);
    }
    if (this.#remaining === 0 && this.#block && this.#filled > 0) this.#hand(this.#block);
    if (this.#remaining === 0) {
      this.#finish();
      return true;
    }
    if (this.#ready.length > READ_AHEAD) {
      // Paused for the caller, however slow the model: the server is not the one silent.
      this.#paused = true;
      this.ps.socket.setTimeout(0);
      return false;
    }
    return true;
  }

  /** Hands the filled part of `block` to the caller. */
  #hand(block: Buffer): void {
    this.#pushed += this.#filled;
    this.#ready.push(block.subarray(0, this.#filled));
    this.#buffers.lend(block, this.base + this.#pushed);
    this.#block = undefined;
    this.#filled = 0;
    this.#notify();
  }

  /** Reads the status line and headers; false when the answer cannot be served (the transfer failed). */
  #parseHead(text: string): boolean {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!status) {
      this.#fail(new Error(`not an HTTP/1.1 answer: ${lines[0]}`));
      return false;
    }
    this.status = Number(status[1]);
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) this.headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    this.#headDone = true;
    const length = this.headers['content-length'];
    this.#closeAfter = /close/i.test(this.headers.connection ?? '');
    if (this.status < 200 || this.status >= 300) {
      // An error answer's body is not read here: `get` sends the request again through the SDK's
      // own handler, which reads and parses it. Reading stops; the transfer is destroyed.
      this.#resolveStarted(this);
      return false;
    }
    if (length === undefined || this.headers['transfer-encoding']) {
      this.#fail(new Error('a GetObject answer without Content-Length'));
      return false;
    }
    this.#remaining = Number(length);
    const crc = this.headers['x-amz-checksum-crc32'];
    // A whole object's CRC32 (a multipart one's is "<crc>-<parts>", a checksum of checksums).
    const composite = crc?.includes('-') || this.headers['x-amz-checksum-type'] === 'COMPOSITE';
    if (crc && !composite && !this.headers['content-range']) this.#expectedCrc = crc;
    this.#resolveStarted(this);
    return true;
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#expectedCrc !== undefined) {
      const actual = Buffer.allocUnsafe(4);
      actual.writeUInt32BE(this.#crc);
      if (actual.toString('base64') !== this.#expectedCrc) {
        this.#done = false;
        this.#fail(new Error('the object body does not match its x-amz-checksum-crc32'));
        return;
      }
    }
    this.#detach();
    if (this.#closeAfter) this.ps.socket.destroy();
    else this.giveBack(this.ps);
    this.#notify();
  }

  #detach(): void {
    if (this.#onAbort) this.signal?.removeEventListener('abort', this.#onAbort);
    this.#onAbort = undefined;
    this.ps.onBytes = () => true;
    this.ps.onEnd = () => {};
  }

  #fail(err: Error): void {
    if (this.#done || this.#error) return;
    const stale = this.reused && !this.#anyByte && !this.signal?.aborted;
    this.#error = stale ? new StaleConnectionError(err.message, { cause: err }) : err;
    this.#detach();
    this.ps.socket.destroy();
    this.#rejectStarted(this.#error);
    this.#notify();
  }

  destroy(err: Error): void {
    if (this.#done) {
      this.#done = false;
      this.#error = err;
      this.#notify();
      return;
    }
    this.#fail(err);
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  release(offset: number): void {
    this.#buffers.release(offset);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        const view = this.#ready.shift();
        if (view) {
          if (this.#paused && this.#ready.length <= READ_AHEAD) {
            this.#paused = false;
            this.ps.socket.setTimeout(this.ps.timeoutMs);
            this.ps.socket.resume();
          }
          yield view;
          continue;
        }
        if (this.#error) throw this.#error;
        if (this.#done) return;
        await new Promise<void>((r) => (this.#wake = r));
      }
    } finally {
      if (!this.#done && !this.#error) this.destroy(new Error('the body was not read to its end'));
    }
  }
}
