import { getEventListeners } from 'node:events';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BlockPool,
  Http1Pool,
  type Http1PoolOptions,
  type Http1Request,
  type Http1Response,
  HttpBodySourceError,
  HttpConnectionError,
  HttpTimeoutError,
} from '../../containers/sidecar/src/http1';
import { seededRandom } from '../support/bytes';

// The sidecar's HTTP/1.1 client against real servers on loopback: node:http for ordinary exchanges,
// raw node:net servers writing hand-made bytes (split into fragments, with small pauses between
// them) for framing edge cases and servers that misbehave. No mocks.

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// ---------------------------------------------------------------------------------------------------
// Helpers

/** `n` pseudo-random bytes, the same for the same seed. */
function bytes(n: number, seed: number): Buffer {
  const rnd = seededRandom(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

/** Compares bytes and, when they differ, says where (a 100 KB diff of Buffers is unreadable). */
function expectBytes(actual: Buffer, expected: Buffer, label = 'body'): void {
  let firstDifference = -1;
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) {
      firstDifference = i;
      break;
    }
  }
  expect({ label, length: actual.length, firstDifference }).toEqual({
    label,
    length: expected.length,
    firstDifference: -1,
  });
}

const bodyOf = (res: Http1Response) => Buffer.concat(res.body as Buffer[]);

/** The rejection of `p` (the test fails if `p` resolves). */
const errorOf = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => {
      throw new Error('expected the request to fail, it succeeded');
    },
    (e: unknown) => e,
  );

async function until(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

interface Served {
  origin: string;
  port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Connections open now. */
  readonly sockets: Set<Socket>;
}

function listen(server: NetServer | HttpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/** A node:net server; `onSocket` writes whatever bytes the test wants. */
async function rawServer(onSocket: (socket: Socket, index: number) => void): Promise<Served> {
  const served: Served = { origin: '', port: 0, connections: 0, sockets: new Set() };
  const server = createNetServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    served.sockets.add(socket);
    socket.on('close', () => served.sockets.delete(socket));
    onSocket(socket, served.connections++);
  });
  served.port = await listen(server);
  served.origin = `http://127.0.0.1:${served.port}`;
  cleanups.push(async () => {
    for (const s of served.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return served;
}

async function httpServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Served & { server: HttpServer }> {
  const server = createHttpServer(handler);
  const served = { origin: '', port: 0, connections: 0, sockets: new Set<Socket>(), server };
  server.on('connection', (socket: Socket) => {
    served.connections++;
    served.sockets.add(socket);
    socket.on('close', () => served.sockets.delete(socket));
  });
  served.port = await listen(server);
  served.origin = `http://127.0.0.1:${served.port}`;
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return served;
}

interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
}

/** A node:http server that records each request (its body decoded by node:http) and answers "ok". */
async function recordingServer(): Promise<Served & { server: HttpServer; seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  const srv = await httpServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('error', () => {});
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(parts),
      });
      res.end('ok');
    });
  });
  return Object.assign(srv, { seen });
}

interface RawRequest {
  readonly head: string;
  readonly body: Buffer;
  /** Every byte of the request as it came. */
  readonly raw: Buffer;
}

/** One whole request at the start of `buf` (body framed by content-length or chunked), if there is one. */
function parseRequest(buf: Buffer): RawRequest | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = buf.toString('latin1', 0, end);
  let at = end + 4;
  if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', at);
      if (eol < 0) return undefined;
      const size = Number.parseInt(buf.toString('latin1', at, eol), 16);
      if (buf.length < eol + 2 + size + 2) return undefined;
      parts.push(buf.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
      if (size === 0) break;
    }
    return { head, body: Buffer.concat(parts), raw: buf.subarray(0, at) };
  }
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
  if (buf.length < at + length) return undefined;
  return { head, body: buf.subarray(at, at + length), raw: buf.subarray(0, at + length) };
}

/** Calls `onRequest` for each whole request the client sends on `socket`. */
function onRequests(socket: Socket, onRequest: (req: RawRequest, index: number) => void): void {
  let buf = Buffer.alloc(0);
  let index = 0;
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const req = parseRequest(buf);
      if (!req) return;
      buf = buf.subarray(req.raw.length);
      onRequest(req, index++);
    }
  });
}

/** Writes the fragments one by one, `delayMs` apart (a delay of 0 writes the next one at once). */
async function writeSlowly(socket: Socket, fragments: ReadonlyArray<string | Buffer>, delayMs = 1) {
  for (let k = 0; k < fragments.length; k++) {
    if (k > 0 && delayMs > 0) await sleep(delayMs);
    if (socket.destroyed) return;
    socket.write(fragments[k]!);
  }
}

/** Cuts `buf` at the given positions (sorted, unique, inside the buffer). */
function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const parts: Buffer[] = [];
  let from = 0;
  for (const c of cuts) {
    parts.push(buf.subarray(from, c));
    from = c;
  }
  parts.push(buf.subarray(from));
  return parts;
}

/** A whole response with a Content-Length. */
function okResponse(body: string | Buffer, extraHeaders = ''): Buffer {
  const b = Buffer.from(body);
  return Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${b.length}\r\n${extraHeaders}\r\n`, 'latin1'),
    b,
  ]);
}

/** A raw server answering every request on every connection with `respond`'s bytes. */
function answering(respond: (req: RawRequest, connection: number, index: number) => string | Buffer) {
  return rawServer((socket, connection) =>
    onRequests(socket, (req, index) => socket.write(respond(req, connection, index))),
  );
}

/** Each connection answers its first request and is closed by the server when another one comes. */
async function answerOnceThenDrop(): Promise<Served & { readonly dropped: number }> {
  let dropped = 0;
  const srv = await rawServer((socket) => {
    let answered = false;
    socket.on('data', (d: Buffer) => {
      if (answered) {
        dropped++;
        socket.destroy();
      } else if (d.includes('\r\n\r\n')) {
        answered = true;
        socket.write(okResponse('first'));
      }
    });
  });
  return Object.defineProperty(srv, 'dropped', { get: () => dropped }) as Served & {
    readonly dropped: number;
  };
}

function newPool(origin: string, opts: Partial<Http1PoolOptions> = {}): Http1Pool {
  const pool = new Http1Pool(origin, { connections: 4, ...opts });
  cleanups.push(() => pool.close());
  return pool;
}

function send(pool: Http1Pool, req: Partial<Http1Request> = {}): Promise<Http1Response> {
  return pool.request({ method: 'GET', path: '/', headersTimeoutMs: 3000, bodyTimeoutMs: 3000, ...req });
}

async function* iterate(parts: readonly Buffer[], delayMs = 0): AsyncGenerator<Buffer> {
  for (const p of parts) {
    if (delayMs > 0) await sleep(delayMs);
    yield p;
  }
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------------------------------------------

describe('BlockPool', () => {
  it('hands out blocks of blockSize and takes back only blocks of that size', () => {
    const pool = new BlockPool(1024);
    const a = pool.take();
    expect(a.length).toBe(1024);
    pool.give([a, Buffer.alloc(10), a.subarray(0, 100)]);
    expect(pool.free).toBe(1);
    expect(pool.take()).toBe(a);
    expect(pool.free).toBe(0);
  });

  it('keeps at most maxFree free blocks', () => {
    const pool = new BlockPool(16, 2);
    pool.give([pool.take(), pool.take(), pool.take()]);
    expect(pool.free).toBe(2);
  });
});

describe('Http1Pool constructor', () => {
  it.each(['https://127.0.0.1:8443', 'ftp://127.0.0.1:21', 'ws://127.0.0.1:80', 'unix:/tmp/model.sock'])(
    'rejects the non-http: URL %s',
    (url) => {
      expect(() => new Http1Pool(url, { connections: 1 })).toThrow(/must be http:\/\/host:port/);
    },
  );

  it('rejects a string that is not a URL', () => {
    expect(() => new Http1Pool('127.0.0.1:8080/x y', { connections: 1 })).toThrow();
  });

  it('accepts an http: URL without connecting', () => {
    const pool = new Http1Pool('http://127.0.0.1:9', { connections: 2 });
    expect(pool.openConnections).toBe(0);
    expect(pool.blocks).toBeInstanceOf(BlockPool);
  });
});

describe('response framing', () => {
  it('reads a Content-Length body byte for byte across 1 KiB block boundaries', async () => {
    const payload = bytes(5000, 1);
    const srv = await httpServer((_req, res) => {
      res.setHeader('Content-Length', payload.length);
      res.setHeader('X-Mixed-Case', 'Value Kept');
      res.end(payload);
    });
    const pool = newPool(srv.origin, { blocks: new BlockPool(1024) });
    const res = await send(pool);
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe('5000');
    expect(res.headers['x-mixed-case']).toBe('Value Kept');
    expect(res.byteLength).toBe(5000);
    expect(res.body.map((b) => b.length)).toEqual([1024, 1024, 1024, 1024, 904]);
    expectBytes(bodyOf(res), payload);
  });

  it.each([1024, 3072])('fills whole blocks, and no extra one, for a body of exactly %i bytes', async (n) => {
    const payload = bytes(n, n);
    const srv = await httpServer((_req, res) => res.end(payload));
    const pool = newPool(srv.origin, { blocks: new BlockPool(1024) });
    const res = await send(pool);
    expect(res.body.map((b) => b.length)).toEqual(Array.from({ length: n / 1024 }, () => 1024));
    expect(res.byteLength).toBe(n);
    expectBytes(bodyOf(res), payload);
  });

  it('reads a Content-Length: 0 answer as an empty body, without taking a block', async () => {
    const srv = await answering(() => okResponse(''));
    const blocks = new BlockPool(1024);
    const pool = newPool(srv.origin, { blocks });
    const res = await send(pool);
    expect(res).toMatchObject({ status: 200, body: [], byteLength: 0 });
    res.release();
    expect(blocks.free).toBe(0);
  });

  it('decodes a chunked body, skipping chunk extensions and trailers, and keeps the connection', async () => {
    const srv = await rawServer((socket) =>
      onRequests(socket, () =>
        writeSlowly(socket, [
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n',
          '5;name=value\r\nhello\r\n',
          '7 ; quoted="a;b"\r\n, world\r\n',
          '0;last=yes\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n',
        ]),
      ),
    );
    const pool = newPool(srv.origin);
    for (let i = 0; i < 2; i++) {
      const res = await send(pool);
      expect(res.status).toBe(200);
      expect(bodyOf(res).toString()).toBe('hello, world');
      expect(res.headers['transfer-encoding']).toBe('chunked');
      expect(res.headers['x-checksum']).toBeUndefined();
    }
    expect(srv.connections).toBe(1);
  });

  it('decodes a chunked body written by node:http in many writes, with trailers, larger than a block', async () => {
    const parts = [bytes(700, 3), bytes(1500, 4), bytes(1, 5), bytes(2048, 6)];
    const srv = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', trailer: 'x-sum' });
      for (const p of parts) res.write(p);
      res.addTrailers({ 'x-sum': '4249' });
      res.end();
    });
    const pool = newPool(srv.origin, { blocks: new BlockPool(1024) });
    const res = await send(pool);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.byteLength).toBe(4249);
    expectBytes(bodyOf(res), Buffer.concat(parts));
  });

  it.each([
    ['HTTP/1.0, no length', 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n'],
    ['HTTP/1.1, no length', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n'],
  ])('reads a body framed by the end of the connection (%s)', async (_label, head) => {
    const payload = bytes(2600, 7);
    const srv = await rawServer((socket) =>
      onRequests(socket, async () => {
        await writeSlowly(socket, [head, payload.subarray(0, 1000), payload.subarray(1000, 2048)]);
        await sleep(2);
        socket.end(payload.subarray(2048));
      }),
    );
    const pool = newPool(srv.origin, { blocks: new BlockPool(1024) });
    const res = await send(pool);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain');
    expectBytes(bodyOf(res), payload);
    expect(pool.openConnections).toBe(0);
    // The next request needs, and gets, a new connection.
    expectBytes(bodyOf(await send(pool)), payload);
    expect(srv.connections).toBe(2);
  });

  it('reads no body after 204 or 304 (even with a Content-Length) and reuses the connection', async () => {
    const srv = await answering(
      (_req, _conn, index) =>
        [
          'HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n',
          'HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n',
          okResponse('after'),
        ][index % 3]!,
    );
    const pool = newPool(srv.origin, { connections: 1 });
    const noContent = await send(pool);
    expect(noContent).toMatchObject({ status: 204, body: [], byteLength: 0, headers: { 'x-a': '1' } });
    const notModified = await send(pool);
    expect(notModified).toMatchObject({ status: 304, body: [], byteLength: 0 });
    expect(bodyOf(await send(pool)).toString()).toBe('after');
    expect(srv.connections).toBe(1);
  });

  it('reads no body for HEAD, though the answer has a Content-Length, and reuses the connection', async () => {
    const payload = bytes(1234, 8);
    const srv = await httpServer((_req, res) => {
      res.setHeader('content-length', payload.length);
      res.end(payload);
    });
    const pool = newPool(srv.origin, { connections: 1 });
    const head = await send(pool, { method: 'HEAD' });
    expect(head).toMatchObject({ status: 200, body: [], byteLength: 0 });
    expect(head.headers['content-length']).toBe('1234');
    expectBytes(bodyOf(await send(pool)), payload);
    expect(srv.connections).toBe(1);
  });

  it.each([
    ['in separate fragments', 2],
    ['in one write', 0],
  ])('skips 100 Continue and 103 Early Hints before the real answer (%s)', async (_label, delayMs) => {
    const srv = await rawServer((socket) =>
      onRequests(socket, () =>
        writeSlowly(
          socket,
          [
            'HTTP/1.1 100 Continue\r\n\r\n',
            'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n',
            'HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok',
          ],
          delayMs,
        ),
      ),
    );
    const pool = newPool(srv.origin);
    const res = await send(pool);
    expect(res.status).toBe(201);
    expect(res.headers).toEqual({ 'content-length': '2' });
    expect(bodyOf(res).toString()).toBe('ok');
    expect(bodyOf(await send(pool)).toString()).toBe('ok');
    expect(srv.connections).toBe(1);
  });

  it('skips the 100 Continue and 103 Early Hints node:http writes', async () => {
    const srv = await httpServer((_req, res) => {
      res.writeContinue();
      res.writeEarlyHints({ link: '</a.js>; rel=preload; as=script' });
      res.end('real');
    });
    const pool = newPool(srv.origin);
    const res = await send(pool);
    expect(res.status).toBe(200);
    expect(res.headers['link']).toBeUndefined();
    expect(bodyOf(res).toString()).toBe('real');
  });

  it('lower-cases header names, joins repeated ones with ", " and accepts a status line without reason', async () => {
    const srv = await answering(
      () =>
        'HTTP/1.1 299\r\nX-Rep: a\r\nx-rep: b\r\nX-Empty:\r\nX-Spaces:   padded value  \r\nContent-Length: 0\r\n\r\n',
    );
    const pool = newPool(srv.origin);
    const res = await send(pool);
    expect(res.status).toBe(299);
    expect(res.headers).toEqual({
      'x-rep': 'a, b',
      'x-empty': '',
      'x-spaces': 'padded value',
      'content-length': '0',
    });
  });
});

describe('response parsing wherever the bytes are split', () => {
  // A body holding an empty line, so a parser that looks for the end of the head in the body fails.
  const SPLIT_RESPONSE = Buffer.from(
    'HTTP/1.1 100 Continue\r\n\r\n' +
      'HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-Rep: a\r\nX-Rep: b\r\n' +
      'Transfer-Encoding: chunked\r\n\r\n' +
      '4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: yes\r\n\r\n',
    'latin1',
  );
  const SPLIT_EXPECTED = {
    status: 201,
    headers: { 'content-type': 'text/plain', 'x-rep': 'a, b', 'transfer-encoding': 'chunked' },
    body: 'Wikipedia in\r\n\r\nchunks.',
  };

  it('parses one chunked response the same wherever it is split in two', async () => {
    let cut = 0;
    const srv = await rawServer((socket) =>
      onRequests(socket, () => {
        cut++;
        void writeSlowly(socket, [SPLIT_RESPONSE.subarray(0, cut), SPLIT_RESPONSE.subarray(cut)], 1);
      }),
    );
    // 16-byte blocks: the body crosses block boundaries too.
    const pool = newPool(srv.origin, { connections: 1, blocks: new BlockPool(16) });
    for (let at = 1; at < SPLIT_RESPONSE.length; at++) {
      const res = await send(pool);
      expect({
        at,
        status: res.status,
        headers: res.headers,
        body: bodyOf(res).toString('latin1'),
      }).toEqual({ at, ...SPLIT_EXPECTED });
      res.release();
    }
    expect(cut).toBe(SPLIT_RESPONSE.length - 1);
    // Every answer ended exactly where it should: the one connection served them all.
    expect(srv.connections).toBe(1);
  });

  it('parses responses the same when split into many fragments at random positions (seeded)', async () => {
    const chunkSizes = [1, 1023, 1024, 1025, 3000];
    const chunkPayloads = chunkSizes.map((n, i) => bytes(n, 100 + i));
    const chunked = Buffer.concat([
      Buffer.from(
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Kind: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
      ),
      ...chunkPayloads.flatMap((p, i) => [
        Buffer.from(`${p.length.toString(16)}${i % 2 ? ';e=1' : ''}\r\n`),
        p,
        Buffer.from('\r\n'),
      ]),
      Buffer.from('0\r\nX-T: 1\r\n\r\n'),
    ]);
    const lengthPayload = bytes(4096 + 17, 200);
    const withLength = okResponse(lengthPayload, 'X-Kind: length\r\n');
    const cases = [
      { response: chunked, kind: 'chunked', body: Buffer.concat(chunkPayloads) },
      { response: withLength, kind: 'length', body: lengthPayload },
    ];

    const rnd = seededRandom(20240611);
    const plan: Array<{ kind: string; body: Buffer; fragments: Buffer[]; delays: number[] }> = [];
    for (let round = 0; round < 30; round++) {
      for (const c of cases) {
        const n = 1 + Math.floor(rnd() * 15);
        const cuts = [
          ...new Set(Array.from({ length: n }, () => 1 + Math.floor(rnd() * (c.response.length - 1)))),
        ].sort((a, b) => a - b);
        const fragments = splitAt(c.response, cuts);
        plan.push({ ...c, fragments, delays: fragments.map(() => (rnd() < 0.5 ? 0 : 1)) });
      }
    }

    let next = 0;
    const srv = await rawServer((socket) =>
      onRequests(socket, async () => {
        const p = plan[next++]!;
        for (let k = 0; k < p.fragments.length; k++) {
          if (p.delays[k]! > 0) await sleep(p.delays[k]!);
          socket.write(p.fragments[k]!);
        }
      }),
    );
    const blocks = new BlockPool(1024);
    const pool = newPool(srv.origin, { connections: 1, blocks });
    for (let i = 0; i < plan.length; i++) {
      const p = plan[i]!;
      const res = await send(pool);
      expect({ i, status: res.status, kind: res.headers['x-kind'] }).toEqual({
        i,
        status: 200,
        kind: p.kind,
      });
      expectBytes(bodyOf(res), p.body, `case ${i} (${p.fragments.length} fragments)`);
      res.release();
    }
    expect(srv.connections).toBe(1);
  });
});

describe('requests', () => {
  it('sends a Buffer body byte for byte with its Content-Length', async () => {
    const srv = await recordingServer();
    const pool = newPool(srv.origin);
    const payload = bytes(100_000, 9);
    const res = await send(pool, { method: 'POST', path: '/invocations?x=1', body: payload });
    expect(bodyOf(res).toString()).toBe('ok');
    const seen = srv.seen[0]!;
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/invocations?x=1');
    expect(seen.headers['content-length']).toBe('100000');
    expect(seen.headers['transfer-encoding']).toBeUndefined();
    expectBytes(seen.body, payload);
  });

  it('sends a list of Buffers as one body whose Content-Length is their sum', async () => {
    const srv = await recordingServer();
    const pool = newPool(srv.origin);
    const parts = [bytes(10, 10), Buffer.alloc(0), bytes(70_000, 11), bytes(3, 12)];
    await send(pool, { method: 'POST', body: parts });
    const seen = srv.seen[0]!;
    expect(seen.headers['content-length']).toBe('70013');
    expectBytes(seen.body, Buffer.concat(parts));
  });

  it('streams an async-iterable body with transfer-encoding: chunked, empty chunks included', async () => {
    const srv = await recordingServer();
    const pool = newPool(srv.origin);
    const parts = [bytes(5, 13), Buffer.alloc(0), bytes(40_000, 14), bytes(1, 15)];
    await send(pool, { method: 'PUT', body: iterate(parts, 1) });
    const seen = srv.seen[0]!;
    expect(seen.method).toBe('PUT');
    expect(seen.headers['transfer-encoding']).toBe('chunked');
    expect(seen.headers['content-length']).toBeUndefined();
    expectBytes(seen.body, Buffer.concat(parts));
  });

  it('sends the caller’s headers and a default host header', async () => {
    const srv = await recordingServer();
    const pool = newPool(srv.origin);
    await send(pool, { headers: { 'X-Custom': 'value 1', accept: 'application/json', 'x-empty': '' } });
    const seen = srv.seen[0]!;
    expect(seen.headers).toMatchObject({
      'x-custom': 'value 1',
      accept: 'application/json',
      'x-empty': '',
      host: `127.0.0.1:${srv.port}`,
      'content-length': '0',
    });
  });

  it('keeps the caller’s host header instead of adding one', async () => {
    const srv = await recordingServer();
    const pool = newPool(srv.origin);
    await send(pool, { headers: { Host: 'model.internal:8080' } });
    const seen = srv.seen[0]!;
    expect(seen.headers.host).toBe('model.internal:8080');
    expect(seen.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')).toHaveLength(1);
  });

  it('writes exactly the expected request bytes for Buffer, empty and streamed bodies', async () => {
    const raws: Buffer[] = [];
    const srv = await answering((req) => {
      raws.push(Buffer.from(req.raw));
      return okResponse('');
    });
    const pool = newPool(srv.origin, { connections: 1 });
    const host = `127.0.0.1:${srv.port}`;
    await send(pool, {
      method: 'POST',
      path: '/invocations',
      headers: { 'X-A': '1' },
      body: Buffer.from('hello'),
    });
    await send(pool, { method: 'GET', path: '/ping' });
    await send(pool, {
      method: 'PUT',
      path: '/s',
      body: iterate([Buffer.from('abc'), Buffer.alloc(0), Buffer.from('0123456789')]),
    });
    expect(raws.map((r) => r.toString('latin1'))).toEqual([
      `POST /invocations HTTP/1.1\r\nX-A: 1\r\nhost: ${host}\r\ncontent-length: 5\r\n\r\nhello`,
      `GET /ping HTTP/1.1\r\nhost: ${host}\r\ncontent-length: 0\r\n\r\n`,
      `PUT /s HTTP/1.1\r\nhost: ${host}\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n`,
    ]);
  });

  it.each([
    ['a value with CR LF', { 'x-bad': 'a\r\nx-injected: 1' }],
    ['a value with a bare LF', { 'x-bad': 'a\nb' }],
    ['a value with a bare CR', { 'x-bad': 'a\rb' }],
    ['a name with a colon', { 'x:bad': 'a' }],
  ])('rejects a header with %s and sends nothing', async (_label, headers) => {
    let received = 0;
    const srv = await rawServer((socket) =>
      socket.on('data', (d: Buffer) => {
        received += d.length;
      }),
    );
    const pool = newPool(srv.origin);
    const error = await errorOf(send(pool, { headers }));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/invalid request header/);
    expect(pool.openConnections).toBe(0);
    await sleep(20);
    expect(received).toBe(0);
  });
});

describe('keep-alive', () => {
  it('reuses one connection for sequential requests', async () => {
    const srv = await recordingServer();
    const pool = newPool(srv.origin, { connections: 4 });
    for (let i = 0; i < 5; i++) expect(bodyOf(await send(pool, { path: `/${i}` })).toString()).toBe('ok');
    expect(srv.seen.map((s) => s.url)).toEqual(['/0', '/1', '/2', '/3', '/4']);
    expect(srv.connections).toBe(1);
    expect(pool.openConnections).toBe(1);
  });

  it('never opens more than `connections` sockets; requests beyond wait, then complete', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let maxOpen = 0;
    let pool: Http1Pool | undefined;
    const srv = await httpServer((req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      maxOpen = Math.max(maxOpen, pool?.openConnections ?? 0);
      setTimeout(() => {
        inFlight--;
        res.end(req.url);
      }, 40);
    });
    pool = newPool(srv.origin, { connections: 2 });
    const sampler = setInterval(() => {
      maxOpen = Math.max(maxOpen, pool?.openConnections ?? 0);
    }, 2);
    cleanups.push(() => clearInterval(sampler));
    const started = performance.now();
    const pending = Array.from({ length: 8 }, (_, i) => send(pool, { path: `/r${i}` }));
    maxOpen = Math.max(maxOpen, pool.openConnections);
    const results = await Promise.all(pending);
    const elapsed = performance.now() - started;
    expect(results.map((r) => bodyOf(r).toString())).toEqual(Array.from({ length: 8 }, (_, i) => `/r${i}`));
    expect(maxInFlight).toBe(2);
    expect(maxOpen).toBeLessThanOrEqual(2);
    expect(srv.connections).toBe(2);
    // 8 requests, 2 at a time, 40 ms each: the ones beyond 2 waited.
    expect(elapsed).toBeGreaterThanOrEqual(4 * 40 - 10);
  });

  it('opens a new connection after a Connection: close answer', async () => {
    let n = 0;
    const srv = await httpServer((_req, res) => {
      if (n++ === 0) res.setHeader('connection', 'close');
      res.end(`answer ${n}`);
    });
    const pool = newPool(srv.origin);
    const first = await send(pool);
    expect(first.headers.connection).toBe('close');
    expect(pool.openConnections).toBe(0);
    expect(bodyOf(await send(pool)).toString()).toBe('answer 2');
    expect(bodyOf(await send(pool)).toString()).toBe('answer 3');
    expect(srv.connections).toBe(2);
  });

  it('keeps an HTTP/1.0 connection only when the answer says Connection: keep-alive', async () => {
    const srv = await answering((req) =>
      req.head.startsWith('GET /keep')
        ? 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nkept'
        : 'HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\ngone',
    );
    const pool = newPool(srv.origin);
    expect(bodyOf(await send(pool, { path: '/keep' })).toString()).toBe('kept');
    expect(bodyOf(await send(pool, { path: '/keep' })).toString()).toBe('kept');
    expect(srv.connections).toBe(1);
    expect(bodyOf(await send(pool, { path: '/plain' })).toString()).toBe('gone');
    expect(pool.openConnections).toBe(0);
    expect(bodyOf(await send(pool, { path: '/keep' })).toString()).toBe('kept');
    expect(srv.connections).toBe(2);
  });

  it('drops a connection whose answer was followed by bytes nobody asked for', async () => {
    const srv = await answering((_req, connection) =>
      connection === 0 ? Buffer.concat([okResponse('ok'), Buffer.from('EXTRA')]) : okResponse('fine'),
    );
    const pool = newPool(srv.origin);
    expect(bodyOf(await send(pool)).toString()).toBe('ok');
    await until(() => pool.openConnections === 0);
    expect(bodyOf(await send(pool)).toString()).toBe('fine');
    expect(srv.connections).toBe(2);
  });

  it('drops an idle connection on which the server sends unasked bytes', async () => {
    const srv = await rawServer((socket, connection) =>
      onRequests(socket, () => {
        socket.write(okResponse(connection === 0 ? 'first' : 'second'));
        if (connection === 0) setTimeout(() => socket.write('HTTP/1.1 200 OK\r\n'), 30);
      }),
    );
    const pool = newPool(srv.origin);
    expect(bodyOf(await send(pool)).toString()).toBe('first');
    expect(pool.openConnections).toBe(1);
    await until(() => pool.openConnections === 0);
    expect(bodyOf(await send(pool)).toString()).toBe('second');
    expect(srv.connections).toBe(2);
  });

  it('closes an idle connection after keepAliveMs', async () => {
    let serverSawEnd = false;
    const srv = await rawServer((socket) => {
      socket.on('end', () => {
        serverSawEnd = true;
      });
      onRequests(socket, () => socket.write(okResponse('x')));
    });
    const pool = newPool(srv.origin, { keepAliveMs: 100 });
    await send(pool);
    expect(pool.openConnections).toBe(1);
    await sleep(30);
    expect(pool.openConnections).toBe(1);
    await until(() => pool.openConnections === 0, 1000);
    await until(() => serverSawEnd, 1000);
    await send(pool);
    expect(srv.connections).toBe(2);
  });

  it('does not keep a connection the server keeps idle for only 1 s (Keep-Alive: timeout=1)', async () => {
    const srv = await answering(() => okResponse('x', 'Keep-Alive: timeout=1\r\n'));
    const pool = newPool(srv.origin);
    const res = await send(pool);
    expect(res.headers['keep-alive']).toBe('timeout=1');
    expect(pool.openConnections).toBe(0);
    await send(pool);
    expect(srv.connections).toBe(2);
  });

  it('closes an idle connection a second before node:http’s Keep-Alive timeout would', async () => {
    let clientClosedAt: number | undefined;
    const srv = await httpServer((_req, res) => res.end('x'));
    srv.server.keepAliveTimeout = 2000;
    srv.server.on('connection', (socket: Socket) =>
      socket.on('end', () => {
        clientClosedAt = performance.now();
      }),
    );
    const pool = newPool(srv.origin, { keepAliveMs: 30_000 });
    const res = await send(pool);
    const answeredAt = performance.now();
    expect(res.headers['keep-alive']).toBe('timeout=2');
    expect(pool.openConnections).toBe(1);
    await until(() => clientClosedAt !== undefined, 1900);
    const idleMs = clientClosedAt! - answeredAt;
    expect(idleMs).toBeGreaterThan(700);
    expect(idleMs).toBeLessThan(1700);
    expect(pool.openConnections).toBe(0);
  });
});

describe('a stale keep-alive connection', () => {
  it.each([
    ['a Buffer', () => Buffer.from('payload')],
    ['a list of Buffers', () => [Buffer.from('pay'), Buffer.from('load')]],
  ])(
    'is retried on a new connection with %s body when the server closed it after answering',
    async (_l, body) => {
      // The server ends every connection right after its one answer, without saying Connection: close.
      const srv = await rawServer((socket) => {
        let answered = false;
        onRequests(socket, (req) => {
          if (answered) return;
          answered = true;
          socket.end(okResponse(`got ${req.body.toString() || 'nothing'}`));
        });
      });
      const pool = newPool(srv.origin, { connections: 1 });
      for (let i = 0; i < 20; i++) {
        const res = await send(pool, { method: 'POST', body: body() });
        expect(bodyOf(res).toString()).toBe('got payload');
      }
      expect(srv.connections).toBe(20);
    },
  );

  it.each([
    ['a Buffer', () => Buffer.from('payload')],
    ['a list of Buffers', () => [Buffer.from('pay'), Buffer.from('load')]],
  ])('is retried once with %s body when the server closes it as the request arrives', async (_l, body) => {
    const srv = await answerOnceThenDrop();
    const pool = newPool(srv.origin, { connections: 1 });
    expect(bodyOf(await send(pool)).toString()).toBe('first');
    expect(pool.openConnections).toBe(1);
    const res = await send(pool, { method: 'POST', body: body() });
    expect(bodyOf(res).toString()).toBe('first');
    expect(srv.dropped).toBe(1);
    expect(srv.connections).toBe(2);
  });

  it('is not retried once any byte of the answer came, even with a Buffer body', async () => {
    // The second request on the connection gets half a head, then the server closes.
    let requests = 0;
    const srv = await rawServer((socket) =>
      onRequests(socket, (_req, index) => {
        requests++;
        if (index === 0) socket.write(okResponse('first'));
        else socket.end('HTTP/1.1 200 OK\r\nContent-Le');
      }),
    );
    const pool = newPool(srv.origin, { connections: 1 });
    expect(bodyOf(await send(pool)).toString()).toBe('first');
    const error = await errorOf(send(pool, { method: 'POST', body: Buffer.from('not twice') }));
    expect(error).toBeInstanceOf(HttpConnectionError);
    expect((error as HttpConnectionError).code).toBe('ECONNRESET');
    expect(requests).toBe(2);
    expect(srv.connections).toBe(1);
  });

  it('is not retried with an async-iterable body: the request fails with HttpConnectionError', async () => {
    const srv = await answerOnceThenDrop();
    const pool = newPool(srv.origin, { connections: 1 });
    expect(bodyOf(await send(pool)).toString()).toBe('first');
    let iterations = 0;
    const body: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => {
        iterations++;
        return iterate([Buffer.from('streamed')], 5)[Symbol.asyncIterator]();
      },
    };
    const error = await errorOf(send(pool, { method: 'POST', body }));
    expect(error).toBeInstanceOf(HttpConnectionError);
    expect(iterations).toBe(1);
    expect(srv.dropped).toBe(1);
    expect(srv.connections).toBe(1);
    expect(pool.openConnections).toBe(0);
  });
});

describe('timeouts', () => {
  it('fails with HttpTimeoutError (headers) when no answer comes within headersTimeoutMs', async () => {
    // Reads the request (so it sees the client's close) and never answers.
    const srv = await rawServer((socket) => socket.resume());
    const pool = newPool(srv.origin);
    const started = performance.now();
    const error = await errorOf(send(pool, { headersTimeoutMs: 150, bodyTimeoutMs: 5000 }));
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(HttpTimeoutError);
    expect((error as HttpTimeoutError).phase).toBe('headers');
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(1000);
    expect(pool.openConnections).toBe(0);
    await until(() => srv.sockets.size === 0);
  });

  it('counts the headers timeout from the request, through 1xx answers', async () => {
    const srv = await rawServer((socket) =>
      onRequests(socket, () =>
        writeSlowly(socket, ['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\n\r\n'], 80),
      ),
    );
    const pool = newPool(srv.origin);
    const error = await errorOf(send(pool, { headersTimeoutMs: 150, bodyTimeoutMs: 5000 }));
    expect(error).toBeInstanceOf(HttpTimeoutError);
    expect((error as HttpTimeoutError).phase).toBe('headers');
  });

  it('does not apply the body timeout while waiting for the headers', async () => {
    const srv = await rawServer((socket) =>
      onRequests(socket, () => setTimeout(() => socket.write(okResponse('late but fine')), 150)),
    );
    const pool = newPool(srv.origin);
    const res = await send(pool, { headersTimeoutMs: 1000, bodyTimeoutMs: 50 });
    expect(bodyOf(res).toString()).toBe('late but fine');
  });

  it('fails with HttpTimeoutError (body) when the body stalls longer than bodyTimeoutMs', async () => {
    const srv = await rawServer((socket) =>
      onRequests(socket, () =>
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n${'x'.repeat(2000)}`),
      ),
    );
    const blocks = new BlockPool(1024);
    const pool = newPool(srv.origin, { blocks });
    const started = performance.now();
    const error = await errorOf(send(pool, { headersTimeoutMs: 1000, bodyTimeoutMs: 150 }));
    expect(error).toBeInstanceOf(HttpTimeoutError);
    expect((error as HttpTimeoutError).phase).toBe('body');
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(pool.openConnections).toBe(0);
    // The partial body's blocks went back to the pool.
    expect(blocks.free).toBe(2);
  });

  it.each([
    ['Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n', (p: Buffer) => p],
    [
      'chunked',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
      (p: Buffer) => Buffer.concat([Buffer.from('3e8\r\n'), p, Buffer.from('\r\n0\r\n\r\n')]),
    ],
  ])('lets a slow but steady %s body take longer in all than bodyTimeoutMs', async (_l, head, frame) => {
    const payload = bytes(1000, 16);
    const framed = frame(payload);
    const cuts = Array.from({ length: 9 }, (_, i) => Math.round(((i + 1) * framed.length) / 10));
    const srv = await rawServer((socket) =>
      onRequests(socket, () => writeSlowly(socket, [head, ...splitAt(framed, cuts)], 50)),
    );
    const pool = newPool(srv.origin);
    const started = performance.now();
    const res = await send(pool, { headersTimeoutMs: 1000, bodyTimeoutMs: 200 });
    expect(performance.now() - started).toBeGreaterThan(400);
    expectBytes(bodyOf(res), payload);
  });
});

describe('AbortSignal', () => {
  it('rejects with the signal’s reason when aborted mid-request, and does not reuse the connection', async () => {
    const srv = await httpServer((req, res) => {
      if (req.url !== '/slow') res.end('quick');
    });
    const pool = newPool(srv.origin);
    expect(bodyOf(await send(pool)).toString()).toBe('quick');
    const ac = new AbortController();
    const reason = new Error('the job was stopped');
    const pending = send(pool, { path: '/slow', signal: ac.signal });
    setTimeout(() => ac.abort(reason), 50);
    expect(await errorOf(pending)).toBe(reason);
    expect(pool.openConnections).toBe(0);
    await until(() => srv.sockets.size === 0);
    expect(bodyOf(await send(pool)).toString()).toBe('quick');
    expect(srv.connections).toBe(2);
  });

  it('rejects with the reason when aborted while the body arrives, and gives its blocks back', async () => {
    const srv = await rawServer((socket) =>
      onRequests(socket, () =>
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n${'y'.repeat(1500)}`),
      ),
    );
    const blocks = new BlockPool(1024);
    const pool = newPool(srv.origin, { blocks });
    const ac = new AbortController();
    const pending = send(pool, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    const error = await errorOf(pending);
    expect(error).toBe(ac.signal.reason);
    expect((error as Error).name).toBe('AbortError');
    expect(pool.openConnections).toBe(0);
    expect(blocks.free).toBe(2);
  });

  it('rejects at once, without connecting, when the signal is already aborted', async () => {
    const srv = await recordingServer();
    const pool = newPool(srv.origin);
    const reason = new Error('already stopped');
    const started = performance.now();
    expect(await errorOf(send(pool, { signal: AbortSignal.abort(reason) }))).toBe(reason);
    expect(performance.now() - started).toBeLessThan(500);
    expect(pool.openConnections).toBe(0);
    await sleep(20);
    expect(srv.connections).toBe(0);
  });

  it('rejects a request waiting for a free connection as soon as its signal aborts', async () => {
    const srv = await httpServer((req, res) => {
      setTimeout(() => res.end('done'), req.url === '/slow' ? 600 : 0);
    });
    const pool = newPool(srv.origin, { connections: 1 });
    const first = send(pool, { path: '/slow' });
    const ac = new AbortController();
    const reason = new Error('not needed any more');
    const queued = send(pool, { signal: ac.signal });
    await sleep(50);
    const abortedAt = performance.now();
    ac.abort(reason);
    const error = await errorOf(queued);
    const waitedMs = performance.now() - abortedAt;
    expect(error).toBe(reason);
    expect(waitedMs).toBeLessThan(300);
    expect(bodyOf(await first).toString()).toBe('done');
  });

  it('does not hold up the next waiting request when a waiting one is aborted', async () => {
    const srv = await httpServer((req, res) => {
      setTimeout(() => res.end(req.url), req.url === '/slow' ? 200 : 0);
    });
    // Idle connections live 2 s: a request left waiting for one to close would take that long.
    const pool = newPool(srv.origin, { connections: 1, keepAliveMs: 2000 });
    const started = performance.now();
    const first = send(pool, { path: '/slow' });
    const ac = new AbortController();
    // Observed at once: the abort rejects it while `first` is still in flight.
    const aborted = errorOf(send(pool, { path: '/aborted', signal: ac.signal }));
    const next = send(pool, { path: '/next' });
    await sleep(50);
    ac.abort(new Error('stop'));
    expect(bodyOf(await first).toString()).toBe('/slow');
    expect(await aborted).toBe(ac.signal.reason);
    expect(bodyOf(await next).toString()).toBe('/next');
    expect(performance.now() - started).toBeLessThan(1000);
    expect(srv.connections).toBe(1);
  });

  it('leaves no abort listener behind on a signal shared by many requests', async () => {
    const srv = await recordingServer();
    const pool = newPool(srv.origin);
    const ac = new AbortController();
    for (let i = 0; i < 20; i++) await send(pool, { signal: ac.signal });
    const failing = await rawServer(() => {});
    const other = newPool(failing.origin);
    await errorOf(send(other, { signal: ac.signal, headersTimeoutMs: 30 }));
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });
});

describe('timeouts and the upload', () => {
  it('starts the headers timeout again once a slow streamed body has gone out', async () => {
    // The server answers 250 ms after the body ends; the body takes ~600 ms to come from its source.
    const srv = await rawServer((socket) =>
      onRequests(socket, () => setTimeout(() => socket.write(okResponse('done')), 250)),
    );
    const pool = newPool(srv.origin);
    const parts = Array.from({ length: 6 }, (_, i) => Buffer.from(`part ${i}\n`));
    const started = performance.now();
    const res = await send(pool, {
      method: 'POST',
      body: iterate(parts, 100),
      headersTimeoutMs: 400,
      bodyTimeoutMs: 400,
    });
    expect(bodyOf(res).toString()).toBe('done');
    expect(performance.now() - started).toBeGreaterThan(600);
  });

  it('still times out when no answer comes within headersTimeoutMs after the body went out', async () => {
    const srv = await rawServer((socket) => socket.resume());
    const pool = newPool(srv.origin);
    const parts = Array.from({ length: 4 }, () => Buffer.from('x'));
    const started = performance.now();
    const error = await errorOf(
      send(pool, { method: 'POST', body: iterate(parts, 100), headersTimeoutMs: 250, bodyTimeoutMs: 250 }),
    );
    expect(error).toBeInstanceOf(HttpTimeoutError);
    expect((error as HttpTimeoutError).phase).toBe('headers');
    // ~400 ms of upload, then the full 250 ms of waiting for an answer.
    expect(performance.now() - started).toBeGreaterThanOrEqual(600);
  });

  it('does not send again a request the server took and then died on (not a stale connection)', async () => {
    let posts = 0;
    const srv = await rawServer((socket) =>
      onRequests(socket, (req) => {
        if (req.head.startsWith('GET')) socket.write(okResponse('warm'));
        else {
          posts++;
          setTimeout(() => socket.destroy(), 150);
        }
      }),
    );
    const pool = newPool(srv.origin, { connections: 1 });
    await send(pool); // the connection is now a reused one
    const error = await errorOf(send(pool, { method: 'POST', body: Buffer.from('batch') }));
    expect(error).toBeInstanceOf(HttpConnectionError);
    expect(posts).toBe(1);
  });
});

describe('header edge cases', () => {
  it('accepts a Content-Length repeated with the same value', async () => {
    const srv = await answering(
      () => 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello',
    );
    const res = await send(newPool(srv.origin));
    expect(bodyOf(res).toString()).toBe('hello');
  });

  it('accepts a head and chunk framing with bare LF line endings', async () => {
    const srv = await answering(
      () => 'HTTP/1.1 200 OK\ntransfer-encoding: chunked\nx-kind: lf\n\n5\nhello\n6; ext\n world\n0\n\n',
    );
    const pool = newPool(srv.origin, { connections: 1 });
    for (let round = 0; round < 2; round++) {
      const res = await send(pool);
      expect(res.headers['x-kind']).toBe('lf');
      expect(bodyOf(res).toString()).toBe('hello world');
    }
    // Framed exactly: the connection was reused for the second answer.
    expect(srv.connections).toBe(1);
  });

  it('refuses a transfer coding under chunked (gzip, chunked) rather than hand over encoded bytes', async () => {
    const srv = await answering(
      () => 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    );
    const error = await errorOf(send(newPool(srv.origin)));
    expect(error).toBeInstanceOf(HttpConnectionError);
    expect((error as Error).message).toMatch(/unsupported transfer-encoding "gzip, chunked"/);
  });
});

describe('errors', () => {
  it('fails with HttpConnectionError ECONNREFUSED when nothing listens', async () => {
    const pool = newPool(`http://127.0.0.1:${await closedPort()}`);
    const error = await errorOf(send(pool));
    expect(error).toBeInstanceOf(HttpConnectionError);
    expect((error as HttpConnectionError).code).toBe('ECONNREFUSED');
    expect(pool.openConnections).toBe(0);
  });

  it.each([
    ['Content-Length', `HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n${'z'.repeat(2500)}`],
    ['chunked', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfa0\r\n${'z'.repeat(2500)}`],
  ])(
    'fails with HttpConnectionError when the server closes mid-body (%s), giving blocks back',
    async (_l, partial) => {
      const srv = await rawServer((socket) => onRequests(socket, () => socket.end(partial)));
      const blocks = new BlockPool(1024);
      const pool = newPool(srv.origin, { blocks });
      const error = await errorOf(send(pool));
      expect(error).toBeInstanceOf(HttpConnectionError);
      expect((error as HttpConnectionError).code).toBe('ECONNRESET');
      expect((error as Error).message).toMatch(/before the response was complete/);
      expect(pool.openConnections).toBe(0);
      expect(blocks.free).toBe(3);
    },
  );

  it('fails, without retrying, when a new connection closes before any answer', async () => {
    const srv = await rawServer((socket) => onRequests(socket, () => socket.end()));
    const pool = newPool(srv.origin);
    const error = await errorOf(send(pool, { method: 'POST', body: Buffer.from('x') }));
    expect(error).toBeInstanceOf(HttpConnectionError);
    expect(srv.connections).toBe(1);
  });

  it.each([
    ['a status line that is not HTTP/1.x', 'HTTP/2 200 OK\r\ncontent-length: 0\r\n\r\n'],
    ['a status line without a status code', 'HTTP/1.1 OK\r\ncontent-length: 0\r\n\r\n'],
    ['a greeting that is not HTTP', 'SSH-2.0-OpenSSH_9.6\r\n\r\n'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nbroken header\r\ncontent-length: 0\r\n\r\n'],
    [
      'a chunk size that is not hex',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    ],
    ['an empty chunk size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n'],
    [
      'a chunk longer than its size',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n',
    ],
    [
      'a chunk not followed by CRLF',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n',
    ],
    ['a negative content-length', 'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n'],
    ['a content-length that is not a number', 'HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\nabcdefghij'],
    [
      'two different content-lengths',
      'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!',
    ],
    ['an unsupported transfer-encoding', 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nabc'],
    ['headers longer than 64 KiB', `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70_000)}`],
  ])('fails with HttpConnectionError HPE_INVALID on %s', async (_label, response) => {
    const srv = await answering(() => response);
    const pool = newPool(srv.origin);
    const error = await errorOf(send(pool));
    expect(error).toBeInstanceOf(HttpConnectionError);
    expect((error as HttpConnectionError).code).toBe('HPE_INVALID');
    expect((error as Error).message).toMatch(/broke HTTP\/1\.1/);
    expect(pool.openConnections).toBe(0);
  });

  it('serves the next request on a new connection after a protocol error', async () => {
    const srv = await answering((_req, connection) =>
      connection === 0 ? 'HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n' : okResponse('recovered'),
    );
    const pool = newPool(srv.origin);
    expect(await errorOf(send(pool))).toBeInstanceOf(HttpConnectionError);
    expect(bodyOf(await send(pool)).toString()).toBe('recovered');
    expect(srv.connections).toBe(2);
  });

  it.each([
    ['after a first chunk', true],
    ['before any chunk', false],
  ])(
    'fails with HttpBodySourceError, the thrown error as cause, when the body’s iterator throws %s',
    async (_l, yieldFirst) => {
      const received: Buffer[] = [];
      const srv = await rawServer((socket) => socket.on('data', (d: Buffer) => received.push(d)));
      const pool = newPool(srv.origin);
      const boom = new Error('gunzip failed: unexpected end of file');
      async function* body(): AsyncGenerator<Buffer> {
        if (yieldFirst) yield Buffer.from('abc');
        await sleep(5);
        throw boom;
      }
      const error = await errorOf(send(pool, { method: 'POST', body: body() }));
      expect(error).toBeInstanceOf(HttpBodySourceError);
      expect((error as Error).cause).toBe(boom);
      expect((error as Error).message).toBe(boom.message);
      expect(pool.openConnections).toBe(0);
      // The server never saw a complete chunked body.
      await until(() => srv.sockets.size === 0);
      expect(Buffer.concat(received).includes('0\r\n\r\n')).toBe(false);
    },
  );
});

describe('an early answer while the request body is still being sent', () => {
  /** Answers 413 to a big request as soon as its head arrives and reads no more of it; 200 otherwise. */
  function refusingServer(): Promise<Served> {
    return rawServer((socket) => {
      let buf = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        if (head.startsWith('POST /big')) {
          socket.off('data', onData);
          socket.pause();
          socket.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 9\r\n\r\ntoo large');
          return;
        }
        const req = parseRequest(buf);
        if (!req) return;
        buf = buf.subarray(req.raw.length);
        socket.write(okResponse(`read ${req.body.length}`));
      };
      socket.on('data', onData);
    });
  }

  it('returns the 413 or fails with HttpConnectionError for an 8 MiB Buffer, and the pool still works', async () => {
    const srv = await refusingServer();
    const pool = newPool(srv.origin, { connections: 1 });
    const outcome = await send(pool, {
      method: 'POST',
      path: '/big',
      body: Buffer.alloc(8 * 1024 * 1024, 1),
    }).then(
      (res) => ({ status: res.status, body: bodyOf(res).toString() }),
      (e: unknown) => e,
    );
    if (outcome instanceof HttpConnectionError) expect(outcome.code).toBeTruthy();
    else expect(outcome).toEqual({ status: 413, body: 'too large' });
    const next = await send(pool, {
      method: 'POST',
      path: '/small',
      body: Buffer.from('12345'),
      headersTimeoutMs: 1000,
    });
    expect(bodyOf(next).toString()).toBe('read 5');
    expect(srv.connections).toBe(2);
  });

  it('stops pulling an async-iterable body once the early answer has come', async () => {
    const srv = await refusingServer();
    const pool = newPool(srv.origin, { connections: 1 });
    const chunk = Buffer.alloc(64 * 1024, 2);
    const total = 512; // 32 MiB, far more than loopback buffers hold
    let pulled = 0;
    let finished = false;
    async function* body(): AsyncGenerator<Buffer> {
      try {
        for (let i = 0; i < total; i++) {
          pulled++;
          yield chunk;
        }
      } finally {
        finished = true;
      }
    }
    const outcome = await send(pool, { method: 'POST', path: '/big', body: body() }).then(
      (res) => res.status,
      (e: unknown) => e,
    );
    if (outcome instanceof HttpConnectionError) expect(outcome.code).toBeTruthy();
    else expect(outcome).toBe(413);
    await until(() => finished);
    expect(pulled).toBeLessThan(total);
    expect(
      bodyOf(await send(pool, { method: 'POST', path: '/small', body: Buffer.from('ab') })).toString(),
    ).toBe('read 2');
  });
});

describe('release()', () => {
  it('hands the body’s blocks back once, and the next response reuses them', async () => {
    const payload = bytes(2500, 17);
    const srv = await httpServer((_req, res) => res.end(payload));
    const blocks = new BlockPool(1024);
    const pool = newPool(srv.origin, { blocks });
    const first = await send(pool);
    expect(first.body).toHaveLength(3);
    expect(blocks.free).toBe(0);
    first.release();
    expect(blocks.free).toBe(3);
    first.release();
    expect(blocks.free).toBe(3);

    const firstMemory = new Set(first.body.map((b) => b.buffer));
    const second = await send(pool);
    expect(blocks.free).toBe(0);
    expect(second.body.every((b) => firstMemory.has(b.buffer))).toBe(true);
    expectBytes(bodyOf(second), payload);
    second.release();
    expect(blocks.free).toBe(3);
  });

  it('gives back no more than maxFree blocks', async () => {
    const srv = await httpServer((_req, res) => res.end(bytes(5000, 18)));
    const blocks = new BlockPool(1024, 2);
    const pool = newPool(srv.origin, { blocks });
    const res = await send(pool);
    expect(res.body).toHaveLength(5);
    res.release();
    expect(blocks.free).toBe(2);
  });
});

describe('close()', () => {
  it('rejects requests waiting for a connection and later ones, and lets the one in flight finish', async () => {
    const srv = await httpServer((req, res) => {
      setTimeout(() => res.end('finished'), req.url === '/slow' ? 150 : 0);
    });
    const pool = newPool(srv.origin, { connections: 1 });
    const inFlight = send(pool, { path: '/slow' });
    const waiting = send(pool);
    await sleep(30);
    await pool.close();
    const waitingError = await errorOf(waiting);
    expect(waitingError).toBeInstanceOf(HttpConnectionError);
    expect((waitingError as Error).message).toMatch(/closed/);
    expect(await errorOf(send(pool))).toBeInstanceOf(HttpConnectionError);
    expect(bodyOf(await inFlight).toString()).toBe('finished');
    expect(pool.openConnections).toBe(0);
  });

  it('closes idle connections at once', async () => {
    const srv = await recordingServer();
    const pool = newPool(srv.origin);
    await send(pool);
    expect(pool.openConnections).toBe(1);
    await pool.close();
    expect(pool.openConnections).toBe(0);
    await until(() => srv.sockets.size === 0);
  });
});
