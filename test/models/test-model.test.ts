import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RecordedRequest, type StartedModel, startTestModel } from '../fixtures/models/start';

const post = (
  model: StartedModel,
  body: string | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
) => fetch(`${model.url}/invocations`, { method: 'POST', body, headers, duplex: 'half' } as RequestInit);

describe('test model: echo', () => {
  let model: StartedModel;
  beforeAll(async () => {
    model = await startTestModel({ TEST_MODEL_RECORD_LIMIT: '3' });
  });
  afterAll(() => model.stop());

  it('answers the body unchanged, with the request Content-Type when there is no Accept', async () => {
    const res = await post(model, 'a,b\nc,d', { 'Content-Type': 'text/csv' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv');
    expect(await res.text()).toBe('a,b\nc,d');
  });

  it('answers with the Accept type when one is given', async () => {
    const res = await post(model, '{}', {
      'Content-Type': 'application/json',
      Accept: 'application/jsonlines',
    });
    expect(res.headers.get('content-type')).toBe('application/jsonlines');
    await res.text();
  });

  it('streams the answer before the request body has ended', async () => {
    let finish!: () => void;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('first part;'));
        finish = () => {
          c.enqueue(new TextEncoder().encode('second part'));
          c.close();
        };
      },
    });
    const res = await post(model, body, { 'Content-Type': 'text/plain' });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('first part;');
    finish();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read())
      rest += new TextDecoder().decode(r.value);
    expect(rest).toBe('second part');
  });

  it('records the headers of the last N invocations for GET /debug/requests', async () => {
    await fetch(`${model.url}/debug/requests`, { method: 'DELETE' });
    for (let i = 0; i < 4; i++) {
      const res = await post(model, `record ${i}`, {
        'Content-Type': 'text/csv',
        Accept: 'text/csv',
        'X-Batch-Transform-Object': `input/part-${i}.csv`,
        'X-Batch-Transform-Record-Offset': String(i * 10),
      });
      await res.text();
    }
    const recorded = (await (await fetch(`${model.url}/debug/requests`)).json()) as RecordedRequest[];
    expect(recorded).toHaveLength(3);
    expect(recorded.map((r) => r.headers['x-batch-transform-object'])).toEqual([
      'input/part-1.csv',
      'input/part-2.csv',
      'input/part-3.csv',
    ]);
    expect(recorded[2]).toMatchObject({
      method: 'POST',
      url: '/invocations',
      bodyBytes: 8,
      status: 200,
      headers: { 'content-type': 'text/csv', accept: 'text/csv', 'x-batch-transform-record-offset': '30' },
    });
  });

  it('answers 404 on /execution-parameters when none are configured', async () => {
    expect((await fetch(`${model.url}/execution-parameters`)).status).toBe(404);
  });
});

describe('test model: faults', () => {
  let model: StartedModel;
  beforeAll(async () => {
    model = await startTestModel({
      TEST_MODEL_UPPERCASE: '1',
      TEST_MODEL_FAIL_MARKER: 'FAILME',
      TEST_MODEL_FAIL_STATUS: '503',
      TEST_MODEL_FAIL_TIMES: '2',
      TEST_MODEL_SLOW_MARKER: 'slowme',
      TEST_MODEL_SLOW_MS: '400',
      TEST_MODEL_MAX_BODY_BYTES: '100',
      TEST_MODEL_EXECUTION_PARAMETERS:
        '{"MaxConcurrentTransforms":4,"BatchStrategy":"MULTI_RECORD","MaxPayloadInMB":1}',
    });
  });
  afterAll(() => model.stop());

  it('upper-cases ASCII letters and leaves other bytes alone', async () => {
    const res = await post(model, 'abc,déf\n1', { 'Content-Type': 'text/csv' });
    expect(await res.text()).toBe('ABC,DéF\n1');
  });

  it('fails the first FAIL_TIMES requests that contain the marker, then succeeds (what a retry needs)', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await post(model, 'x FAILME y', { 'Content-Type': 'text/plain' });
      statuses.push(res.status);
      await res.text();
    }
    expect(statuses).toEqual([503, 503, 200]);
    const clean = await post(model, 'no marker', { 'Content-Type': 'text/plain' });
    expect(clean.status).toBe(200);
    await clean.text();
  });

  it('sleeps SLOW_MS on bodies that contain the slow marker only', async () => {
    const t0 = performance.now();
    await (await post(model, 'slowme')).text();
    const slow = performance.now() - t0;
    const t1 = performance.now();
    await (await post(model, 'fast')).text();
    const fast = performance.now() - t1;
    expect(slow).toBeGreaterThanOrEqual(390);
    expect(fast).toBeLessThan(300);
  });

  it('answers 413 to bodies over MAX_BODY_BYTES, with or without Content-Length', async () => {
    expect((await post(model, 'x'.repeat(100))).status).toBe(200);
    const big = await post(model, 'x'.repeat(101));
    expect(big.status).toBe(413);
    expect(await big.text()).toContain('TEST_MODEL_MAX_BODY_BYTES=100');
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(80));
        c.enqueue(new Uint8Array(80));
        c.close();
      },
    });
    expect((await post(model, chunked)).status).toBe(413);
  });

  it('serves TEST_MODEL_EXECUTION_PARAMETERS as JSON', async () => {
    const res = await fetch(`${model.url}/execution-parameters`);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({
      MaxConcurrentTransforms: 4,
      BatchStrategy: 'MULTI_RECORD',
      MaxPayloadInMB: 1,
    });
  });
});

describe('test model: start-up and death', () => {
  it('answers /ping 503 until PING_DELAY_MS has passed', async () => {
    const model = await startTestModel({ TEST_MODEL_PING_DELAY_MS: '2500' }, { waitForPing: false });
    try {
      const started = performance.now();
      expect((await fetch(`${model.url}/ping`)).status).toBe(503);
      let status = 0;
      while (status !== 200 && performance.now() - started < 5000) {
        await new Promise((r) => setTimeout(r, 50));
        status = (await fetch(`${model.url}/ping`)).status;
      }
      expect(status).toBe(200);
    } finally {
      await model.stop();
    }
  });

  it('exits with code 1 right after answering EXIT_AFTER_REQUESTS invocations', async () => {
    const model = await startTestModel({
      TEST_MODEL_EXIT_AFTER_REQUESTS: '2',
      TEST_MODEL_LATENCY_MS: '5-15',
    });
    for (let i = 0; i < 2; i++) {
      const res = await post(model, `request ${i}`);
      expect(await res.text()).toBe(`request ${i}`);
    }
    expect(await model.exited).toBe(1);
    await expect(post(model, 'after death')).rejects.toThrow();
    expect(model.output()).toContain('exiting after 2 invocations');
  });

  it('exits 0 on SIGTERM', async () => {
    const model = await startTestModel();
    expect(await model.stop()).toBe(0);
  });
});
