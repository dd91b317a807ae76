import { ModelClient } from '../containers/sidecar/src/model-client';
import { ownCpuSeconds } from './proc';
import { MiB } from './stats';

export interface EchoRun {
  readonly bytes: number;
  readonly ms: number;
  /** CPU seconds this process (the client) spent. */
  readonly clientCpuSeconds: number;
}

/**
 * The ceiling for the pipeline: the sidecar's own HTTP client (ModelClient, an undici Pool with one
 * connection per MaxConcurrentTransforms) posting `bodyMiB` bodies to the echo model with
 * `concurrency` requests in flight, each response read whole as the sidecar reads it. No storage, no
 * splitting, no output: only the HTTP round trips the pipeline cannot avoid.
 */
export async function echoCeiling(o: {
  modelUrl: string;
  concurrency: number;
  bodyMiB: number;
  totalBytes: number;
}): Promise<EchoRun> {
  const client = new ModelClient({
    url: o.modelUrl,
    connections: o.concurrency,
    invocationTimeoutMs: 60_000,
    maxRetries: 0,
  });
  // Rows of CSV-like text, the same kind of bytes the pipeline sends.
  const body = Buffer.alloc(
    o.bodyMiB * MiB,
    '0,1,2.5,abc,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n',
  );
  const headers = {
    'content-type': 'text/csv',
    accept: 'text/csv',
    'content-length': String(body.length),
  };
  const requests = Math.max(o.concurrency, Math.ceil(o.totalBytes / body.length));
  try {
    let next = 0;
    let received = 0;
    const lane = async () => {
      while (next < requests) {
        next++;
        const r = await client.invokeOnce(body, headers);
        if (r.kind !== 'ok') throw new Error(`echo model answered ${r.kind}: ${JSON.stringify(r)}`);
        received += r.byteLength;
        r.release();
      }
    };
    const started = performance.now();
    const cpu = ownCpuSeconds();
    await Promise.all(Array.from({ length: o.concurrency }, lane));
    const ms = performance.now() - started;
    const clientCpuSeconds = ownCpuSeconds() - cpu;
    if (received !== requests * body.length) throw new Error('the echo model answered short bodies');
    return { bytes: requests * body.length, ms, clientCpuSeconds };
  } finally {
    await client.close();
  }
}
