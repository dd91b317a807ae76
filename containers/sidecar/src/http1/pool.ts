import { BlockPool } from './block-pool';
import { Connection } from './connection';
import {
  type Http1Request,
  type Http1Response,
  HttpConnectionError,
  isAsyncIterable,
  StaleConnectionError,
  unwrapStale,
} from './types';

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
