/**
 * Kernels for the data-plane benchmarks (for the project benchmark to import; test/dataplane/microbench.ts runs them).
 * Each works on an in-memory object fed in 64 KiB chunks, as an S3 stream would deliver it.
 */
import { readMiniBatchGroups } from '../src/dataplane/input';
import type { DataPlaneOptions } from '../src/dataplane/options';

export const CHUNK_SIZE = 64 * 1024;

/** The baseline: count newlines with a bare indexOf loop. */
export function boundaryScan(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) n++;
  return n;
}

/** The object as a stream of `chunkSize` subarrays. */
export async function* chunksOf(buf: Buffer, chunkSize = CHUNK_SIZE): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += chunkSize) yield buf.subarray(i, i + chunkSize);
}

/** About `bytes` of CSV rows averaging `rowBytes` bytes each, every row `\n`-terminated (deterministic). */
export function csvRows(bytes: number, rowBytes = 100): Buffer {
  const rows: string[] = [];
  let total = 0;
  for (let i = 0; total < bytes; i++) {
    const head = `${i},${(i * 7919) % 1000},${(i * 31) % 97}.5,abc,`;
    const pad = Math.max(1, rowBytes - head.length - 1 + ((i * 13) % 21) - 10);
    const row = `${head}${'x'.repeat(pad)}\n`;
    rows.push(row);
    total += row.length;
  }
  return Buffer.from(rows.join(''));
}

export interface PackFigures {
  readonly batches: number;
  readonly records: number;
  readonly bodyBytes: number;
}

/** Line, text/csv, MultiRecord at 6 MiB, no filter: the options of the hot path (the data-plane tests use them too). */
export const CSV_LINE: DataPlaneOptions = {
  splitType: 'Line',
  compressionType: 'None',
  batchStrategy: 'MultiRecord',
  maxPayloadInMB: 6,
  contentType: 'text/csv',
  joinSource: 'None',
  assembleWith: 'Line',
};

/** Line MultiRecord packing (no filter): the sidecar's hot path. */
export async function packLineMultiRecord(buf: Buffer, maxPayloadInMB = 6): Promise<PackFigures> {
  return drain(readMiniBatchGroups(chunksOf(buf), { ...CSV_LINE, maxPayloadInMB }));
}

/** Line SingleRecord packing: one mini-batch per line. */
export async function packLineSingleRecord(buf: Buffer): Promise<PackFigures> {
  return drain(readMiniBatchGroups(chunksOf(buf), { ...CSV_LINE, batchStrategy: 'SingleRecord' }));
}

async function drain(groups: ReturnType<typeof readMiniBatchGroups>): Promise<PackFigures> {
  let n = 0;
  let records = 0;
  let bodyBytes = 0;
  for await (const group of groups) {
    for (const b of group) {
      n++;
      records += b.count;
      if (!b.streamed) bodyBytes += b.byteLength;
    }
  }
  return { batches: n, records, bodyBytes };
}
