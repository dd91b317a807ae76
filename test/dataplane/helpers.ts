import fc from 'fast-check';
import type { Invocation, MiniBatch } from '../../src/dataplane/batch';
import type { DataRecord } from '../../src/dataplane/record';

/** The bytes as a stream cut at the given offsets (sorted, deduplicated, inside the buffer). */
export async function* cutAt(buf: Buffer, cuts: readonly number[] = []): AsyncGenerator<Buffer> {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < buf.length))].sort((a, b) => a - b);
  let prev = 0;
  for (const p of points) {
    yield buf.subarray(prev, p);
    prev = p;
  }
  if (prev < buf.length || buf.length === 0) yield buf.subarray(prev);
}

/** The bytes as a stream of `size`-byte chunks. */
export function chunked(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  const cuts: number[] = [];
  for (let i = size; i < buf.length; i += size) cuts.push(i);
  return cutAt(buf, cuts);
}

/** Random cut points for a buffer of `length` bytes. */
export const cutsFor = (length: number) =>
  fc.array(fc.integer({ min: 0, max: Math.max(0, length) }), { maxLength: 12 });

export async function collectRecords(groups: AsyncIterable<DataRecord[]>): Promise<DataRecord[]> {
  const out: DataRecord[] = [];
  for await (const g of groups) out.push(...g);
  return out;
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
}

export function buffered(batches: readonly Invocation[]): MiniBatch[] {
  return batches.map((b) => {
    if (b.streamed) throw new Error('expected buffered mini-batches');
    return b;
  });
}

/** Every record of a batch as [offset, bytes as text]. */
export function recordsOf(batch: MiniBatch): Array<[number, string]> {
  return Array.from({ length: batch.count }, (_, i) => [
    batch.recordOffset(i),
    batch.record(i).toString('latin1'),
  ]);
}

export async function rejection(p: Promise<unknown>): Promise<Error & { offset?: number }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { offset?: number };
  }
  throw new Error('expected a rejection');
}

export { CSV_LINE } from '../../bench/kernels';

/** Lines without `\n` (any other byte, `\r` included), as latin1 strings so bytes map 1:1. */
export const lineArb = fc.string({
  unit: fc.constantFrom('a', 'b', ',', '"', '\r', ' ', 'é'),
  maxLength: 12,
});
