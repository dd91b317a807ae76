import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BadInputError,
  type InferenceHandlers,
  type ModelServer,
  mediaType,
  negotiate,
  resolveSettings,
  splitLines,
  startModelServer,
} from '../../containers/models/toolkit';

/** A model that reverses each line; predict fails on the line "boom" and waits on "wait:<ms>". */
const reverser: InferenceHandlers<{ loadedFrom: string }, string[], string[]> = {
  contentTypes: ['text/plain', 'application/jsonlines'],
  accepts: ['text/plain', 'application/jsonlines'],
  defaultContentType: 'text/plain',
  modelFn: (modelDir) => ({ loadedFrom: modelDir }),
  inputFn(body, contentType) {
    const lines = splitLines(body);
    if (contentType === 'application/jsonlines') {
      return lines.map((l, i) => {
        const v = JSON.parse(l);
        if (typeof v !== 'string') throw new BadInputError(`line ${i + 1} is not a JSON string`);
        return v;
      });
    }
    return lines;
  },
  async predictFn(lines, model) {
    if (lines.includes('boom')) throw new Error('the model blew up on "boom"');
    const wait = lines.find((l) => l.startsWith('wait:'));
    if (wait) await new Promise((r) => setTimeout(r, Number(wait.slice(5))));
    if (lines.includes('whoami')) return [model.loadedFrom];
    return lines.map((l) => [...l].reverse().join(''));
  },
  outputFn(lines, accept) {
    return accept === 'application/jsonlines'
      ? lines.map((l) => JSON.stringify(l)).join('\n')
      : lines.join('\n');
  },
};

const quiet = () => {};

describe('model server toolkit over HTTP', () => {
  let server: ModelServer;
  beforeAll(async () => {
    server = await startModelServer(reverser, {
      port: 0,
      host: '127.0.0.1',
      modelDir: '/models/reverser',
      maxRequestBytes: 1024,
      env: {},
      log: quiet,
    });
    await server.loaded;
  });
  afterAll(() => server.close());

  const invoke = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/invocations`, { method: 'POST', body, headers });

  it('answers GET /ping 200 once the model is loaded', async () => {
    const res = await fetch(`${server.url}/ping`);
    expect(res.status).toBe(200);
  });

  it('passes the model folder to modelFn', async () => {
    const res = await invoke('whoami', { 'Content-Type': 'text/plain' });
    expect(await res.text()).toBe('/models/reverser');
  });

  it('runs the four hooks and answers with the negotiated type as Content-Type', async () => {
    const res = await invoke('"abc"\n"xy"\n', {
      'Content-Type': 'application/jsonlines',
      Accept: 'text/csv;q=0.9, text/plain',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain');
    expect(await res.text()).toBe('cba\nyx');
  });

  it('answers in the request type when there is no Accept, and folds JSON Lines aliases', async () => {
    const res = await invoke('"ab"', { 'Content-Type': 'application/x-ndjson; charset=utf-8' });
    expect(res.headers.get('content-type')).toBe('application/jsonlines');
    expect(await res.text()).toBe('"ba"');
  });

  it('assumes defaultContentType when the request has none', async () => {
    const res = await fetch(`${server.url}/invocations`, {
      method: 'POST',
      body: new Uint8Array(Buffer.from('hello')),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('olleh');
  });

  it('answers 415 naming the readable types for an unsupported Content-Type', async () => {
    const res = await invoke('x', { 'Content-Type': 'image/png' });
    expect(res.status).toBe(415);
    expect(await res.text()).toContain('this model reads text/plain, application/jsonlines');
  });

  it('answers 406 when Accept allows none of the written types', async () => {
    const res = await invoke('x', { 'Content-Type': 'text/plain', Accept: 'application/xml' });
    expect(res.status).toBe(406);
    expect(await res.text()).toContain('application/xml');
  });

  it('answers 400 with the hook message when inputFn rejects the body', async () => {
    const res = await invoke('"ok"\n42\n', { 'Content-Type': 'application/jsonlines' });
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('invalid application/jsonlines input: line 2 is not a JSON string\n');
  });

  it('answers 400 when inputFn throws an ordinary error (unparsable body)', async () => {
    const res = await invoke('{not json', { 'Content-Type': 'application/jsonlines' });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/^invalid application\/jsonlines input: .*JSON/);
  });

  it('answers 500 with the message when predictFn throws', async () => {
    const res = await invoke('fine\nboom', { 'Content-Type': 'text/plain' });
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('the model blew up on "boom"\n');
  });

  it('answers 413 to a body over the limit and keeps serving on the same connection', async () => {
    const big = await invoke('x'.repeat(1025), { 'Content-Type': 'text/plain' });
    expect(big.status).toBe(413);
    expect(await big.text()).toContain('limit of 1024 bytes');
    const atLimit = await invoke('y'.repeat(1024), { 'Content-Type': 'text/plain' });
    expect(atLimit.status).toBe(200);
    expect((await atLimit.text()).length).toBe(1024);
  });

  it('answers 413 to an over-limit chunked body (no Content-Length)', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 4; i++) c.enqueue(new Uint8Array(400).fill(0x61));
        c.close();
      },
    });
    const res = await fetch(`${server.url}/invocations`, {
      method: 'POST',
      body,
      headers: { 'Content-Type': 'text/plain' },
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
  });

  it('answers the default execution parameters: MULTI_RECORD, 2 in flight, the limit in whole MB (at least 1)', async () => {
    const res = await fetch(`${server.url}/execution-parameters`);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({
      MaxConcurrentTransforms: 2,
      BatchStrategy: 'MULTI_RECORD',
      MaxPayloadInMB: 1,
    });
  });

  it('answers 404 for unknown routes and 405 for GET /invocations', async () => {
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/invocations`)).status).toBe(405);
  });
});

describe('model server lifecycle', () => {
  it('answers /ping and /invocations 503 until modelFn resolves, then 200', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const server = await startModelServer(
      {
        ...reverser,
        modelFn: async (dir) => {
          await gate;
          return { loadedFrom: dir };
        },
      },
      { port: 0, host: '127.0.0.1', env: {}, log: quiet },
    );
    try {
      expect((await fetch(`${server.url}/ping`)).status).toBe(503);
      const early = await fetch(`${server.url}/invocations`, { method: 'POST', body: 'abc' });
      expect(early.status).toBe(503);
      release();
      await server.loaded;
      expect((await fetch(`${server.url}/ping`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('rejects `loaded` with the error of a failing modelFn', async () => {
    const server = await startModelServer(
      {
        ...reverser,
        modelFn: () => {
          throw new Error('no weights in /opt/ml/model');
        },
      },
      { port: 0, host: '127.0.0.1', env: {}, log: quiet },
    );
    await expect(server.loaded).rejects.toThrow('no weights');
    await server.close();
  });

  it('serves the execution parameters from the hook, and 404 when the hook returns undefined', async () => {
    const server = await startModelServer(
      {
        ...reverser,
        executionParametersFn: (model) =>
          model.loadedFrom === '/none'
            ? undefined
            : { MaxConcurrentTransforms: 4, BatchStrategy: 'SINGLE_RECORD', MaxPayloadInMB: 2 },
      },
      { port: 0, host: '127.0.0.1', modelDir: '/some', env: {}, log: quiet },
    );
    const none = await startModelServer(
      { ...reverser, executionParametersFn: () => undefined },
      { port: 0, host: '127.0.0.1', env: {}, log: quiet },
    );
    try {
      await Promise.all([server.loaded, none.loaded]);
      expect(await (await fetch(`${server.url}/execution-parameters`)).json()).toEqual({
        MaxConcurrentTransforms: 4,
        BatchStrategy: 'SINGLE_RECORD',
        MaxPayloadInMB: 2,
      });
      expect((await fetch(`${none.url}/execution-parameters`)).status).toBe(404);
    } finally {
      await Promise.all([server.close(), none.close()]);
    }
  });

  it('close() lets an in-flight invocation finish and refuses new connections', async () => {
    const server = await startModelServer(reverser, { port: 0, host: '127.0.0.1', env: {}, log: quiet });
    await server.loaded;
    const inFlight = fetch(`${server.url}/invocations`, { method: 'POST', body: 'wait:300\nabc' });
    await new Promise((r) => setTimeout(r, 100));
    const closed = server.close(5000);
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('003:tiaw\ncba');
    await closed;
    await expect(fetch(`${server.url}/ping`)).rejects.toThrow();
  });

  it('answers requests without Accept in SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT when the model writes it', async () => {
    const server = await startModelServer(reverser, {
      port: 0,
      host: '127.0.0.1',
      env: { SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: 'application/jsonlines' },
      log: quiet,
    });
    const unwritable = await startModelServer(reverser, {
      port: 0,
      host: '127.0.0.1',
      env: { SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: 'application/xml' },
      log: quiet,
    });
    try {
      await Promise.all([server.loaded, unwritable.loaded]);
      const res = await fetch(`${server.url}/invocations`, { method: 'POST', body: 'ab' });
      expect(res.headers.get('content-type')).toBe('application/jsonlines');
      expect(await res.text()).toBe('"ba"');
      const plain = await fetch(`${unwritable.url}/invocations`, { method: 'POST', body: 'ab' });
      expect(plain.headers.get('content-type')).toBe('text/plain');
      expect(await plain.text()).toBe('ba');
    } finally {
      await Promise.all([server.close(), unwritable.close()]);
    }
  });

  it('logs one line per request when MODEL_SERVER_LOG_REQUESTS=true, none by default', async () => {
    const lines: string[] = [];
    const log = (line: string) => lines.push(line);
    const verbose = await startModelServer(reverser, {
      port: 0,
      host: '127.0.0.1',
      env: { MODEL_SERVER_LOG_REQUESTS: 'true' },
      log,
    });
    await verbose.loaded;
    await (await fetch(`${verbose.url}/invocations`, { method: 'POST', body: 'abc' })).text();
    await verbose.close();
    expect(lines.filter((l) => l.startsWith('POST /invocations 200 in=3B out=3B'))).toHaveLength(1);

    lines.length = 0;
    const silent = await startModelServer(reverser, { port: 0, host: '127.0.0.1', env: {}, log });
    await silent.loaded;
    await (await fetch(`${silent.url}/invocations`, { method: 'POST', body: 'abc' })).text();
    await silent.close();
    expect(lines.filter((l) => l.includes('/invocations'))).toEqual([]);
  });
});

describe('settings from the SageMaker environment', () => {
  it.each([
    ['nothing set: 6 MiB', {}, undefined, 6 * 1024 * 1024],
    ['SAGEMAKER_MAX_PAYLOAD_IN_MB', { SAGEMAKER_MAX_PAYLOAD_IN_MB: '10' }, undefined, 10 * 1024 * 1024],
    ['SAGEMAKER_MAX_PAYLOAD_IN_MB=0 is no limit', { SAGEMAKER_MAX_PAYLOAD_IN_MB: '0' }, undefined, Infinity],
    ['the model option over the payload hint', { SAGEMAKER_MAX_PAYLOAD_IN_MB: '10' }, 2048, 2048],
    ['SAGEMAKER_MAX_REQUEST_SIZE over everything', { SAGEMAKER_MAX_REQUEST_SIZE: '500' }, 2048, 500],
  ])('request limit: %s', (_, env, maxRequestBytes, expected) => {
    expect(resolveSettings({ env, maxRequestBytes }).maxRequestBytes).toBe(expected);
  });

  it('reads port, host and model folder from SAGEMAKER_BIND_TO_PORT, SAGEMAKER_BIND_TO_HOST, SM_MODEL_DIR', () => {
    expect(resolveSettings({ env: {} })).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      modelDir: '/opt/ml/model',
    });
    const s = resolveSettings({
      env: { SAGEMAKER_BIND_TO_PORT: '9000', SAGEMAKER_BIND_TO_HOST: '127.0.0.1', SM_MODEL_DIR: '/m' },
    });
    expect(s).toMatchObject({ port: 9000, host: '127.0.0.1', modelDir: '/m' });
  });

  it('fails start-up naming the variable when a number is malformed', () => {
    expect(() => resolveSettings({ env: { SAGEMAKER_BIND_TO_PORT: 'http' } })).toThrow(
      'SAGEMAKER_BIND_TO_PORT="http" is not an integer from 0 to 65535',
    );
  });
});

describe('media types', () => {
  it.each([
    ['text/csv; charset=utf-8', 'text/csv'],
    ['Application/JSON', 'application/json'],
    ['application/jsonl', 'application/jsonlines'],
    ['application/x-jsonlines', 'application/jsonlines'],
    ['', undefined],
  ])('mediaType(%j) is %j', (header, expected) => {
    expect(mediaType(header)).toBe(expected);
  });

  const supported = ['text/csv', 'application/json'];
  it.each([
    [undefined, 'text/csv'],
    ['*/*', 'text/csv'],
    ['application/json', 'application/json'],
    ['application/*', 'application/json'],
    ['text/html, application/json;q=0.5', 'application/json'],
    ['application/json;q=0.2, text/csv;q=0.8', 'text/csv'],
    ['application/json;q=0', undefined],
    ['image/png', undefined],
  ])('negotiate(%j) with fallback text/csv picks %j', (accept, expected) => {
    expect(negotiate(accept, supported, 'text/csv')).toBe(expected);
  });

  it.each([
    ['', []],
    ['a\n', ['a']],
    ['a\r\nb\r\n', ['a', 'b']],
    ['a\n\nb', ['a', '', 'b']],
  ])('splitLines(%j) is %j', (body, expected) => {
    expect(splitLines(Buffer.from(body))).toEqual(expected);
  });
});
