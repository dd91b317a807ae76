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
 *
 * Its parts, each importing only those below it: `pool.ts` (`Http1Pool`: connections handed out,
 * parked and reopened), `connection.ts` (one socket and the request written on it), `exchange.ts`
 * (one response parsed and framed into pool blocks), `block-pool.ts`, and `types.ts` (the request,
 * response and errors they share).
 */
export { BlockPool } from './block-pool';
export { Http1Pool, type Http1PoolOptions } from './pool';
export {
  type Http1Request,
  type Http1Response,
  HttpBodySourceError,
  HttpConnectionError,
  HttpTimeoutError,
} from './types';
