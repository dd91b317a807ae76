import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExampleModel } from '../../src/local/example-models';
import { loadModel } from '../../containers/models/sentiment/handlers';
import { type StartedModel, startModelProcess } from '../fixtures/models/start';

const sentiment = findExampleModel('sentiment')!;

describe('sentiment model (scoring)', () => {
  it.each([
    ['Great app, love it', 'positive'],
    ['Keeps crashing, so buggy', 'negative'],
    ['not buggy at all', 'positive'],
    ['It opens.', 'neutral'],
  ])('labels %j as %s', async (text, label) => {
    const model = await loadModel('/nonexistent');
    expect(model.analyze(text).label).toBe(label);
  });

  it('keeps one model’s lexicon.json words out of another model', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lexicon-'));
    try {
      await writeFile(join(dir, 'lexicon.json'), '{"meh": -3}');
      const custom = await loadModel(dir);
      const plain = await loadModel(join(dir, 'none'));
      expect(custom.analyze('meh').score).toBe(-3);
      expect(plain.analyze('meh').score).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sentiment model server (a real process)', () => {
  let dir: string;
  let model: StartedModel;
  let nested: StartedModel;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sentiment-model-'));
    await writeFile(join(dir, 'lexicon.json'), JSON.stringify({ meh: -2 }));
    [model, nested] = await Promise.all([
      startModelProcess(sentiment.command, { env: { SM_MODEL_DIR: dir } }),
      startModelProcess(sentiment.command, { env: { SENTIMENT_TEXT_FIELD: 'review.body' } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([model?.stop(), nested?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  const invoke = (m: StartedModel, body: string, headers: Record<string, string>) =>
    fetch(`${m.url}/invocations`, { method: 'POST', body, headers });
  const jsonLines = async (res: Response) => (await res.text()).split('\n').map((l) => JSON.parse(l));

  it('answers GET /ping 200 and the default execution parameters', async () => {
    expect((await fetch(`${model.url}/ping`)).status).toBe(200);
    expect(await (await fetch(`${model.url}/execution-parameters`)).json()).toMatchObject({
      BatchStrategy: 'MULTI_RECORD',
    });
  });

  it('answers one {"label","score","comparative"} line per JSON Lines review, in order', async () => {
    const body = [
      '{"id":"r1","text":"Great app, love it","rating":5}',
      '{"id":"r2","text":"Crashes every time. Uninstalled.","rating":1}',
      '{"id":"r3","text":"It is an app.","rating":3}',
    ].join('\n');
    const res = await invoke(model, body, { 'Content-Type': 'application/jsonlines' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/jsonlines');
    expect(await jsonLines(res)).toEqual([
      { label: 'positive', score: 6, comparative: 1.5 },
      { label: 'negative', score: -4, comparative: -1 },
      { label: 'neutral', score: 0, comparative: 0 },
    ]);
  });

  it('reads bare JSON strings, which is what InputFilter $.text sends', async () => {
    const res = await invoke(model, '"love it"\n"hate it"\n', { 'Content-Type': 'application/jsonlines' });
    expect((await jsonLines(res)).map((r) => r.label)).toEqual(['positive', 'negative']);
  });

  it('uses the lexicon.json of its model folder', async () => {
    const res = await invoke(model, '"meh"', { 'Content-Type': 'application/jsonlines' });
    expect(await jsonLines(res)).toEqual([{ label: 'negative', score: -2, comparative: -2 }]);
  });

  it('answers application/json with an object for one review and a list for a list', async () => {
    const one = await invoke(model, '{"text":"awesome"}', { 'Content-Type': 'application/json' });
    expect(await one.json()).toEqual({ label: 'positive', score: 4, comparative: 4 });
    const many = await invoke(model, '["awesome", {"text":"awful"}]', { 'Content-Type': 'application/json' });
    expect(((await many.json()) as { label: string }[]).map((r) => r.label)).toEqual([
      'positive',
      'negative',
    ]);
  });

  it('reads the field named by SENTIMENT_TEXT_FIELD, a dotted path into nested objects', async () => {
    const res = await invoke(nested, '{"review":{"body":"love it"}}', {
      'Content-Type': 'application/jsonlines',
    });
    expect((await jsonLines(res))[0].label).toBe('positive');
    const missing = await invoke(nested, '{"text":"love it"}', { 'Content-Type': 'application/jsonlines' });
    expect(missing.status).toBe(400);
    expect(await missing.text()).toContain('line 1: no string field "review.body"');
  });

  it('reads text/plain, one review per line, and answers JSON Lines', async () => {
    const res = await invoke(model, 'love it\nhate it', { 'Content-Type': 'text/plain' });
    expect(res.headers.get('content-type')).toBe('application/jsonlines');
    expect((await jsonLines(res)).map((r) => r.label)).toEqual(['positive', 'negative']);
  });

  it.each([
    ['a line that is not JSON', '{"text":"ok"}\n{oops', 'line 2 is not JSON'],
    ['a review without text', '{"id":"r9","rating":4}', 'line 1: no string field "text"'],
    ['a number', '42', 'expected a JSON object with a "text" field or a JSON string'],
  ])('answers 400 to %s, saying which line', async (_, body, message) => {
    const res = await invoke(model, body, { 'Content-Type': 'application/jsonlines' });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain(message);
  });

  it('answers 415 to text/csv', async () => {
    expect((await invoke(model, 'a,b', { 'Content-Type': 'text/csv' })).status).toBe(415);
  });

  it('answers 413 to a body over the 6 MiB default limit', async () => {
    const res = await invoke(model, `"${'a'.repeat(6 * 1024 * 1024)}"`, {
      'Content-Type': 'application/jsonlines',
    });
    expect(res.status).toBe(413);
  });
});
