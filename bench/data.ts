import { createWriteStream } from 'node:fs';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { csvRows } from './kernels';

/**
 * Benchmark input, generated on first use under `.bench-data/` (gitignored) and reused: one CSV
 * object of ~100-byte rows per size, in its own folder so a job's S3Prefix matches only it.
 */
export async function csvInput(root: string, mb: number): Promise<{ dir: string; bytes: number }> {
  const dir = join(root, `input-${mb}MB`);
  const file = join(dir, 'rows.csv');
  const existing = await stat(file).catch(() => undefined);
  if (existing?.isFile()) return { dir, bytes: existing.size };
  await mkdir(dir, { recursive: true });
  // Written through a temp name so an interrupted run never leaves a short file to be reused.
  const temp = join(dir, `.rows.csv.${process.pid}.partial`);
  const out = createWriteStream(temp);
  // One block of whole rows, repeated: csvRows builds strings, so a 1 GB object is made of blocks.
  const block = csvRows(Math.min(mb, 64) * 1_000_000);
  let left = mb * 1_000_000;
  while (left > 0) {
    const piece = left >= block.length ? block : block.subarray(0, block.lastIndexOf(10, left - 1) + 1);
    if (piece.length === 0) break;
    if (!out.write(piece)) await once(out, 'drain');
    left -= piece.length;
  }
  out.end();
  await once(out, 'finish');
  await rename(temp, file);
  return { dir, bytes: (await stat(file)).size };
}

/**
 * `count` JSON Lines objects of `records` records each (~60-byte records), one file per object:
 * many small objects, the most common shape of real input (a file per day, per customer).
 */
export async function jsonLinesObjects(
  root: string,
  count: number,
  records: number,
): Promise<{ dir: string; bytes: number; objects: number }> {
  const dir = join(root, `jsonl-${count}x${records}`);
  const done = `${dir}.complete`; // beside the folder: a job reads everything in it
  const objectText = (o: number) =>
    Array.from(
      { length: records },
      (_, r) => `${JSON.stringify({ id: `${o}-${r}`, features: [o % 7, r, 0.5] })}\n`,
    ).join('');
  if (!(await stat(done).catch(() => undefined))) {
    await mkdir(dir, { recursive: true });
    for (let o = 0; o < count; o++)
      await writeFile(join(dir, `part-${String(o).padStart(5, '0')}.jsonl`), objectText(o));
    await writeFile(done, '');
  }
  let bytes = 0;
  for (let o = 0; o < count; o++) bytes += Buffer.byteLength(objectText(o));
  return { dir, bytes, objects: count };
}

/** `count` CSV objects of `mb` MB each (~100-byte rows), one folder for the set. */
export async function csvObjects(
  root: string,
  count: number,
  mb: number,
): Promise<{ dir: string; bytes: number; objects: number }> {
  const dir = join(root, `csv-${count}x${mb}MB`);
  const done = `${dir}.complete`; // beside the folder: a job reads everything in it
  const block = csvRows(mb * 1_000_000);
  if (!(await stat(done).catch(() => undefined))) {
    await mkdir(dir, { recursive: true });
    for (let o = 0; o < count; o++)
      await writeFile(join(dir, `part-${String(o).padStart(3, '0')}.csv`), block);
    await writeFile(done, '');
  }
  return { dir, bytes: block.length * count, objects: count };
}
