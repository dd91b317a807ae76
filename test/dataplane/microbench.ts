/**
 * Data-plane micro-benchmark: `node --import tsx test/dataplane/microbench.ts [MB]`.
 * Prints Line MultiRecord packing throughput against a bare newline scan of the same bytes, and
 * SingleRecord packing in records per second. Best of several runs, after a warm-up.
 */
import { boundaryScan, csvRows, packLineMultiRecord, packLineSingleRecord } from '../../bench/kernels';

const mb = Number(process.argv[2] ?? 100);
const data = csvRows(mb * 1_000_000);
const small = csvRows(20_000_000, 20);

async function best(runs: number, fn: () => unknown): Promise<number> {
  let min = Number.POSITIVE_INFINITY;
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    await fn();
    min = Math.min(min, performance.now() - t);
  }
  return min;
}

const lines = boundaryScan(data);
const scanMs = await best(7, () => boundaryScan(data));
const multiMs = await best(7, () => packLineMultiRecord(data, 6));
const multi = await packLineMultiRecord(data, 6);
const smallLines = boundaryScan(small);
const singleMs = await best(5, () => packLineSingleRecord(small));

const mbps = (ms: number) => ((data.length / ms) * 1e3) / 1e6;
console.log(
  `data: ${(data.length / 1e6).toFixed(0)} MB, ${lines} rows of ~${Math.round(data.length / lines)} bytes`,
);
console.log(`bare newline scan:            ${scanMs.toFixed(1)} ms  ${mbps(scanMs).toFixed(0)} MB/s`);
console.log(
  `Line MultiRecord (6 MiB):     ${multiMs.toFixed(1)} ms  ${mbps(multiMs).toFixed(0)} MB/s  ` +
    `${(scanMs / multiMs).toFixed(2)} x scan  (${multi.batches} batches, ${multi.records} records)`,
);
console.log(
  `Line SingleRecord:            ${singleMs.toFixed(1)} ms  ${(((smallLines / singleMs) * 1e3) / 1e6).toFixed(2)} M records/s ` +
    `(${smallLines} records of ~${Math.round(small.length / smallLines)} bytes)`,
);
