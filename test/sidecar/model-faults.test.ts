import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { freePort } from '../../src/local/processes';
import type { StartedModel } from '../fixtures/models/start';
import { BUCKET, countingProxy, model, type PreparedJob, SidecarFixture, upper } from './harness';

// The sidecar process against a model that is slow, fails, refuses big bodies, dies, or is stopped
// mid-object. Whatever happens, an object gets its `.out` only when all of it succeeded, and no
// multipart upload is left behind.

let fx: SidecarFixture;
const cleanups: Array<() => Promise<unknown>> = [];
/** Answers after a random 0–20 ms. */
let jittery: StartedModel;
/** Holds any body containing SLOWME for 8 s; answers 400 to any body containing POISON. */
let troubled: StartedModel;

beforeAll(async () => {
  [fx, jittery, troubled] = await Promise.all([
    SidecarFixture.start(),
    model(
      { TEST_MODEL_UPPERCASE: '1', TEST_MODEL_LATENCY_MS: '0-20', TEST_MODEL_RECORD_LIMIT: '0' },
      cleanups,
    ),
    model(
      {
        TEST_MODEL_UPPERCASE: '1',
        TEST_MODEL_SLOW_MARKER: 'SLOWME',
        TEST_MODEL_SLOW_MS: '8000',
        TEST_MODEL_FAIL_MARKER: 'POISON',
        TEST_MODEL_FAIL_STATUS: '400',
        TEST_MODEL_RECORD_LIMIT: '0',
      },
      cleanups,
    ),
  ]);
});
afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await fx?.stop();
});

const rows = (n: number, tag: string, width = 20) =>
  Array.from({ length: n }, (_, i) => `${tag}-${String(i).padStart(7, '0')},${'v'.repeat(width)}\n`).join('');

/** A text object of about `mib` MiB whose last line holds `marker`, and that line's byte offset. */
function bigObjectEndingWith(marker: string, mib: number): { text: string; markerOffset: number } {
  const body = rows(Math.ceil((mib * 1024 * 1024) / 110), 'big', 96);
  return { text: `${body}${marker},last\n`, markerOffset: Buffer.byteLength(body) };
}

const outputKey = (job: PreparedJob, relativeKey: string) =>
  `${job.outputUri.slice(`s3://${BUCKET}/`.length)}${relativeKey}.out`;

describe.concurrent('a model that is slow, flaky or limited', () => {
  it('keeps input order with 4 invocations in flight and random model latency', async ({ expect }) => {
    const objects = { 'a.csv': rows(150, 'a'), 'b.csv': rows(150, 'b'), 'c/d.csv': rows(150, 'd') };
    const job = await fx.prepare('order', {
      objects,
      request: { MaxConcurrentTransforms: 4, BatchStrategy: 'SingleRecord' },
    });
    const proxy = await countingProxy(jittery);
    cleanups.push(() => proxy.close());
    const run = await fx.run(job, { model: proxy });
    expect(run.code, run.stderr).toBe(0);
    expect(proxy.maxInFlight).toBe(4);
    for (const [key, text] of Object.entries(objects)) {
      expect((await fx.output(job, key))?.toString(), key).toBe(upper(text).toString());
    }
    const result = await fx.result(job);
    expect(result.effective.MaxConcurrentTransforms).toBe(4);
    expect(result.counters).toMatchObject({ invocations: 450, records: 450, objectsCompleted: 3 });
  });

  it('retries HTTP 500 and, once the model answers, writes byte-identical output', async ({ expect }) => {
    const flaky = await model(
      { TEST_MODEL_UPPERCASE: '1', TEST_MODEL_FAIL_MARKER: 'FAILME', TEST_MODEL_FAIL_TIMES: '2' },
      cleanups,
    );
    const text = `${rows(10, 'x')}FAILME,1\n${rows(10, 'y')}`;
    const job = await fx.prepare('retry', {
      objects: { 'r.csv': text },
      request: { BatchStrategy: 'MultiRecord' },
    });
    const run = await fx.run(job, { model: flaky });
    expect(run.code, run.stderr).toBe(0);
    expect((await fx.output(job, 'r.csv'))!.equals(upper(text))).toBe(true);
    expect((await fx.result(job)).counters).toMatchObject({
      invocations: 3,
      invocationRetries: 2,
      modelErrors5xx: 2,
      objectsCompleted: 1,
    });
  });

  it('by default fails an object whose mini-batch the model answers 413, without splitting it (SageMaker)', async ({
    expect,
  }) => {
    const limited = await model({ TEST_MODEL_UPPERCASE: '1', TEST_MODEL_MAX_BODY_BYTES: '200' }, cleanups);
    const fits = rows(60, 'f'); // 1.9 KB in one mini-batch: 413
    const job = await fx.prepare('no-halving-413', {
      objects: { 'fits.csv': fits, 'small.csv': 'ok,1\n' },
      request: { BatchStrategy: 'MultiRecord' },
    });
    const run = await fx.run(job, { model: limited });
    expect(run.code, run.stderr).toBe(0);
    expect(await fx.output(job, 'fits.csv')).toBeUndefined();
    expect((await fx.output(job, 'small.csv'))?.toString()).toBe('OK,1\n');
    expect((await fx.itemsByKey(job)).get('fits.csv')).toMatchObject({
      status: 'Failed',
      error: {
        offset: 0,
        message: expect.stringMatching(
          /^model answered HTTP 413.* for the mini-batch of 60 records starting at byte offset 0 \(Extensions\.SplitBatchOnFailure halves/,
        ),
      },
    });
    // One request for each object: no halves were sent.
    expect((await fx.result(job)).counters).toMatchObject({ invocations: 2, modelErrors4xx: 1 });
  });

  it('by default retries a timed-out mini-batch InvocationsMaxRetries times, then fails the object without splitting it', async ({
    expect,
  }) => {
    const slow = 'a,1\nb,2\nSLOWME,3\nd,4\n';
    const job = await fx.prepare('timeout-retried', {
      objects: { 'slow.csv': slow },
      request: {
        BatchStrategy: 'MultiRecord',
        ModelClientConfig: { InvocationsTimeoutInSeconds: 1, InvocationsMaxRetries: 1 },
      },
    });
    const run = await fx.run(job, { model: troubled });
    expect(run.code, run.stderr).toBe(0);
    expect((await fx.itemsByKey(job)).get('slow.csv')).toMatchObject({
      status: 'Failed',
      error: {
        offset: 0,
        message:
          'model did not answer within InvocationsTimeoutInSeconds (1 s) (2 attempts, InvocationsMaxRetries 1) ' +
          'for the mini-batch of 4 records starting at byte offset 0 ' +
          '(Extensions.SplitBatchOnFailure halves such a mini-batch down to single records)',
      },
    });
    expect((await fx.result(job)).counters).toMatchObject({ invocations: 2, modelTimeouts: 2 });
  });

  it('time to failure with a hung model: one timeout by default, log2(records) + 1 timeouts with SplitBatchOnFailure', async ({
    expect,
  }) => {
    // Every record hangs: the evidence behind SageMaker's behaviour as the default (docs/JOB.md).
    const hung = Array.from({ length: 32 }, (_, i) => `SLOWME-${i}\n`).join('');
    const request = (split: boolean) => ({
      BatchStrategy: 'MultiRecord',
      ModelClientConfig: { InvocationsTimeoutInSeconds: 1, InvocationsMaxRetries: 0 },
      Extensions: { SplitBatchOnFailure: split },
    });
    const [plain, split] = await Promise.all([
      fx.prepare('hung-default', { objects: { 'hung.csv': hung }, request: request(false) }),
      fx.prepare('hung-split', { objects: { 'hung.csv': hung }, request: request(true) }),
    ]);
    const runs = await Promise.all([fx.run(plain, { model: troubled }), fx.run(split, { model: troubled })]);
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    const [a, b] = await Promise.all([fx.itemsByKey(plain), fx.itemsByKey(split)]);
    const [timeoutsA, timeoutsB] = [(await fx.result(plain)).counters, (await fx.result(split)).counters].map(
      (c) => c.modelTimeouts,
    );
    // 32 → 16 → 8 → 4 → 2 → 1: six timeouts before the first single record fails.
    expect([timeoutsA, timeoutsB]).toEqual([1, 6]);
    const [msA, msB] = [a.get('hung.csv')!.durationMs, b.get('hung.csv')!.durationMs];
    expect(msA).toBeGreaterThanOrEqual(1000);
    expect(msA).toBeLessThan(3000);
    expect(msB).toBeGreaterThanOrEqual(6000);
    console.log(`hung model, 32 records, timeout 1 s: default ${msA} ms, SplitBatchOnFailure ${msB} ms`);
  });

  it('with Extensions.SplitBatchOnFailure, halves a mini-batch the model answers 413 until it fits, and fails a single record that never fits', async ({
    expect,
  }) => {
    const limited = await model({ TEST_MODEL_UPPERCASE: '1', TEST_MODEL_MAX_BODY_BYTES: '200' }, cleanups);
    const fits = rows(60, 'f'); // 1.9 KB in one mini-batch: 413, then halves of 30, 15, 8/7 records
    const head = rows(3, 'h');
    const job = await fx.prepare('halving', {
      objects: { 'fits.csv': fits, 'too-wide.csv': `${head}${'w'.repeat(300)}\n${rows(2, 't')}` },
      request: { BatchStrategy: 'MultiRecord', Extensions: { SplitBatchOnFailure: true } },
    });
    const run = await fx.run(job, { model: limited });
    expect(run.code, run.stderr).toBe(0);
    expect((await fx.output(job, 'fits.csv'))!.equals(upper(fits))).toBe(true);
    expect(await fx.output(job, 'too-wide.csv')).toBeUndefined();
    const items = await fx.itemsByKey(job);
    expect(items.get('fits.csv')).toMatchObject({ status: 'Completed', records: 60 });
    expect(items.get('too-wide.csv')).toMatchObject({
      status: 'Failed',
      error: {
        offset: head.length,
        message: expect.stringMatching(
          new RegExp(`HTTP 413.* for the record at byte offset ${head.length}$`),
        ),
      },
    });
    expect((await fx.result(job)).counters.modelErrors4xx).toBeGreaterThan(3);
    expect(await fx.incompleteUploads(job)).toEqual([]);
  });

  it('with Extensions.SplitBatchOnFailure, fails an object whose record outlasts InvocationsTimeoutInSeconds, naming its key and offset', async ({
    expect,
  }) => {
    const slow = 'a,1\nb,2\nSLOWME,3\nd,4\n';
    const job = await fx.prepare('timeout', {
      objects: { 'slow.csv': slow, 'fine.csv': 'ok,1\n' },
      request: {
        BatchStrategy: 'MultiRecord',
        ModelClientConfig: { InvocationsTimeoutInSeconds: 1, InvocationsMaxRetries: 0 },
        Extensions: { SplitBatchOnFailure: true },
      },
    });
    const run = await fx.run(job, { model: troubled });
    expect(run.code, run.stderr).toBe(0);
    const offset = slow.indexOf('SLOWME');
    const items = await fx.itemsByKey(job);
    // The timed-out mini-batch is halved down to the record at fault, so the error is that record's.
    expect(items.get('slow.csv')).toMatchObject({
      status: 'Failed',
      error: {
        offset,
        message: `model did not answer within InvocationsTimeoutInSeconds (1 s) for the record at byte offset ${offset}`,
      },
    });
    const logged = run.logs.find((l) => l.level === 'error' && l.msg.startsWith('object failed'));
    expect(logged).toMatchObject({ object: `${job.inputUri}slow.csv`, offset });
    expect(logged!.msg).toContain(`${job.inputUri}slow.csv`);
    expect(await fx.output(job, 'slow.csv')).toBeUndefined();
    expect((await fx.output(job, 'fine.csv'))!.toString()).toBe('OK,1\n');
    expect((await fx.result(job)).counters.modelTimeouts).toBeGreaterThanOrEqual(3);
  });

  it('leaves no .out and no incomplete upload for a failed object whose upload had begun, and finishes the others', async ({
    expect,
  }) => {
    const { text, markerOffset } = bigObjectEndingWith('POISON', 10);
    const small = rows(20, 's');
    const job = await fx.prepare('failed-object', {
      objects: { '1-small.csv': small, '2-big.csv': text, '3-small.csv': small },
      request: { MaxConcurrentTransforms: 2, MaxPayloadInMB: 1, BatchStrategy: 'MultiRecord' },
    });
    // The poisoned mini-batch is answered late, so every mini-batch before it has been written, and
    // the upload has begun, by the time it fails: read-ahead may send it long before that.
    const lateRefusal = await model(
      {
        TEST_MODEL_UPPERCASE: '1',
        TEST_MODEL_SLOW_MARKER: 'POISON',
        TEST_MODEL_SLOW_MS: '3000',
        TEST_MODEL_FAIL_MARKER: 'POISON',
        TEST_MODEL_FAIL_STATUS: '400',
        TEST_MODEL_RECORD_LIMIT: '0',
      },
      cleanups,
    );
    const key = outputKey(job, '2-big.csv');
    const stop = fx.record((r) => r.key === key);
    const run = await fx.run(job, { model: lateRefusal });
    const requests = stop().map((r) => r.operation);
    expect(run.code, run.stderr).toBe(0);
    // More than 8 MiB of output (one part) had gone into a multipart upload before the failure; it was aborted.
    expect(requests).toContain('CreateMultipartUpload');
    expect(requests).toContain('UploadPart');
    expect(requests).toContain('AbortMultipartUpload');
    expect(requests).not.toContain('CompleteMultipartUpload');
    expect(await fx.incompleteUploads(job)).toEqual([]);
    expect([...(await fx.outputs(job)).keys()].sort()).toEqual(['1-small.csv.out', '3-small.csv.out']);
    expect((await fx.output(job, '3-small.csv'))!.equals(upper(small))).toBe(true);
    // A 400 fails the mini-batch it answered (SageMaker does not retry client errors), so the error
    // names that mini-batch: the one that holds the record at fault.
    const { error } = (await fx.itemsByKey(job)).get('2-big.csv')!;
    expect(error!.message).toMatch(
      new RegExp(
        `^model answered HTTP 400: .* for the mini-batch of \\d+ records starting at byte offset ${error!.offset}$`,
      ),
    );
    expect(error!.offset).toBeGreaterThan(8 * 1024 * 1024);
    expect(error!.offset).toBeLessThanOrEqual(markerOffset);
  });
});

describe.concurrent('a model that dies, a task that is stopped', () => {
  it.for([
    ['with MODEL_PID (local runs)', true],
    ['without it (an ECS task)', false],
  ] as const)(
    'the model dying mid-partition ends the sidecar promptly, non-zero, naming the object: %s',
    async ([, withPid], { expect }) => {
      const mortal = await model(
        { TEST_MODEL_UPPERCASE: '1', TEST_MODEL_EXIT_AFTER_REQUESTS: '5' },
        cleanups,
      );
      const job = await fx.prepare('model-dies', {
        objects: { 'a.csv': rows(10, 'a'), 'b.csv': rows(10, 'b'), 'c.csv': rows(10, 'c') },
        request: { MaxConcurrentTransforms: 1, BatchStrategy: 'SingleRecord' },
      });
      const running = fx.spawn(job, { model: mortal, modelPid: withPid });
      const diedAt = await mortal.exited.then(() => performance.now());
      const run = await running.done;
      const afterDeathMs = performance.now() - diedAt;
      expect(run.code, run.stderr).toBe(1);
      expect(afterDeathMs).toBeLessThan(5000);
      // Two objects are open at once and share the one slot, so the request that meets the dead
      // model may be either's: the reason names the object it was transforming, whichever it was.
      const fatal = (await fx.result(job)).fatal ?? '';
      const named = new RegExp(
        `the model stopped answering while transforming ${job.inputUri.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([abc])\\.csv`,
      ).exec(fatal);
      expect(named, fatal).not.toBeNull();
      const reason = named![0];
      expect(run.logs.some((l) => l.level === 'error' && l.msg.includes(reason))).toBe(true);
      expect((await fx.result(job)).fatalCategory).toBe('AlgorithmError'); // the model's failure
      expect([...(await fx.outputs(job)).keys()]).toEqual([]);
      expect(await fx.incompleteUploads(job)).toEqual([]);
    },
  );

  it('a model container that exits before it ever answers /ping ends the sidecar within seconds, not its start-up budget, naming the model and its exit code (ECS task metadata)', async ({
    expect,
  }) => {
    // ECS's task metadata endpoint (v4) as it answers once the model container has exited with 1.
    let modelStopped = false;
    const metadata = http.createServer((req, res) => {
      const body = JSON.stringify({
        Containers: [
          {
            Name: 'model',
            KnownStatus: modelStopped ? 'STOPPED' : 'RUNNING',
            ...(modelStopped ? { ExitCode: 1 } : {}),
          },
          { Name: 'sidecar', KnownStatus: 'RUNNING' },
        ],
      });
      res.writeHead(req.url === '/v4/task-1/task' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((resolve) => metadata.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => metadata.close(resolve)));
    const job = await fx.prepare('model-never-started', {
      objects: { 'a.csv': rows(5, 'a') },
      request: { Extensions: { ModelStartupTimeoutInSeconds: 600 } },
    });
    // Nothing listens where the model would: it crashed while starting.
    const running = fx.spawn(job, {
      model: { url: `http://127.0.0.1:${await freePort()}` },
      modelPid: false,
      env: {
        ECS_CONTAINER_METADATA_URI_V4: `http://127.0.0.1:${(metadata.address() as AddressInfo).port}/v4/task-1`,
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const diedAt = performance.now();
    modelStopped = true;
    const run = await running.done;
    expect(run.code, run.stderr).toBe(1);
    expect(performance.now() - diedAt).toBeLessThan(5000);
    expect((await fx.result(job)).fatal).toMatch(
      /model "test-model": the model server exited before it became healthy: container "model" exited with code 1/,
    );
  });

  it('SIGTERM mid-object aborts the open upload and exits non-zero promptly', async ({ expect }) => {
    const { text } = bigObjectEndingWith('SLOWME', 10);
    const job = await fx.prepare('sigterm', {
      objects: { 'big.csv': text, 'later.csv': rows(5, 'l') },
      request: { MaxPayloadInMB: 1, BatchStrategy: 'MultiRecord' },
    });
    const key = outputKey(job, 'big.csv');
    const partSent = fx.nextRequest((r) => r.key === key && r.operation === 'UploadPart');
    const stopRecording = fx.record((r) => r.key === key);
    const running = fx.spawn(job, { model: troubled });
    await partSent;
    // The upload is open and the model is holding the last mini-batch (8 s): stop the task now.
    const stoppedAt = performance.now();
    running.child.kill('SIGTERM');
    const run = await running.done;
    expect(run.code, run.stderr).toBe(143);
    // Well before the model would have answered: the in-flight invocation was abandoned.
    expect(performance.now() - stoppedAt).toBeLessThan(5000);
    const requests = stopRecording().map((r) => r.operation);
    expect(requests).toContain('AbortMultipartUpload');
    expect(requests).not.toContain('CompleteMultipartUpload');
    expect(run.logs.some((l) => l.level === 'warn' && l.msg.startsWith('SIGTERM received'))).toBe(true);
    expect(await fx.incompleteUploads(job)).toEqual([]);
    // later.csv may have been transformed beside big.csv (objects are worked on together); the
    // object that was stopped has no output.
    expect([...(await fx.outputs(job)).keys()]).not.toContain('big.csv.out');
    expect((await fx.result(job)).fatal).toMatch(/stopped/);
    expect((await fx.result(job)).fatalCategory).toBe('InternalServerError'); // stopped from outside
  });

  it('a model whose /execution-parameters asks for MaxPayloadInMB over 100 fails the partition with a clear reason', async ({
    expect,
  }) => {
    const greedy = await model(
      { TEST_MODEL_EXECUTION_PARAMETERS: JSON.stringify({ MaxPayloadInMB: 200 }) },
      cleanups,
    );
    const job = await fx.prepare('model-params', { objects: { 'a.csv': rows(3, 'a') } });
    const run = await fx.run(job, { model: greedy });
    expect(run.code, run.stderr).toBe(1);
    const fatal = (await fx.result(job)).fatal;
    expect(fatal).toContain(
      "the model's GET /execution-parameters asks for MaxPayloadInMB 200; at most 100 is allowed",
    );
    expect(fatal).not.toMatch(/\n\s+at /);
    expect((await fx.result(job)).fatalCategory).toBe('AlgorithmError');
    expect([...(await fx.outputs(job)).keys()]).toEqual([]);
  });
});
