import { createWriteStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
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
