/**
 * Scores the sentiment model against the star ratings of the example reviews: a review rated 4–5
 * should be positive and one rated 1–2 negative (3-star reviews are left out as ambiguous).
 *
 *   node --import tsx containers/models/sentiment/evaluate.ts [files.jsonl ...]
 *
 * With no file, reads examples/reviews/input/*.jsonl. Prints the agreement and the confusion table.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { splitLines } from '../toolkit';
import { loadModel } from './handlers';

const EXAMPLES = fileURLToPath(new URL('../../../examples/reviews/input/', import.meta.url));

const files =
  process.argv.length > 2
    ? process.argv.slice(2)
    : (await readdir(EXAMPLES)).filter((f) => f.endsWith('.jsonl')).map((f) => join(EXAMPLES, f));

// No model folder: the built-in lexicon, as the example job runs it.
const model = await loadModel(join(EXAMPLES, 'no-model-dir'));
const table = new Map<string, number>();
let agree = 0;
let rated = 0;
for (const file of files) {
  for (const line of splitLines(await readFile(file))) {
    const { rating, text } = JSON.parse(line) as { rating: number; text: string };
    if (rating === 3) continue;
    const expected = rating >= 4 ? 'positive' : 'negative';
    const { label } = model.analyze(text);
    const key = `${expected} → ${label}`;
    table.set(key, (table.get(key) ?? 0) + 1);
    rated++;
    if (label === expected) agree++;
  }
}
process.stdout.write(
  `${agree} of ${rated} reviews rated 1–2 or 4–5 agree with their stars (${((agree / rated) * 100).toFixed(1)}%)\n`,
);
for (const [key, count] of [...table].sort()) process.stdout.write(`  rating says ${key}: ${count}\n`);
