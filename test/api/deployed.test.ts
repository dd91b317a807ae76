import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionArn, STATE_MACHINE_ARN } from '../client/fake-aws';
import { ROOT } from '../support/cli';
import { makeTempDir, type TempDir } from '../support/tmp';
import { boto3Missing, clientEnv, type RunningApi, run, startApi } from './server';

/**
 * `batch-transform api --state-machine-arn …`: the deployed back end, driven by boto3. AWS is the
 * suite's fake Step Functions client (loaded through BATCH_TRANSFORM_TEST_AWS_CLIENTS, as the
 * deployed CLI verbs' tests do), answering as an execution that completed.
 */

const SCENARIOS = join(ROOT, 'test', 'api', 'boto3_scenarios.py');
const missingBoto3 = boto3Missing();
if (missingBoto3) console.warn(`test/api/deployed.test.ts skipped: ${missingBoto3}`);

const request = JSON.parse(readFileSync(join(ROOT, 'test/job/seed-request.json'), 'utf8'));
const NAME: string = request.TransformJobName;

describe.skipIf(missingBoto3 !== undefined)('batch-transform api on a deployed stack, with boto3', () => {
  let tmp: TempDir;
  let api: RunningApi;

  beforeAll(async () => {
    tmp = await makeTempDir('bt-api-deployed');
    const execution = {
      executionArn: executionArn(NAME),
      stateMachineArn: STATE_MACHINE_ARN,
      name: NAME,
      status: 'SUCCEEDED',
      startDate: '2030-01-31T10:00:00.000Z',
      stopDate: '2030-01-31T10:20:00.000Z',
      input: JSON.stringify(request),
      output: JSON.stringify({
        TransformJobName: NAME,
        TransformJobStatus: 'Completed',
        CreationTime: '2030-01-31T10:00:01.000Z',
        TransformStartTime: '2030-01-31T10:01:00.000Z',
        TransformEndTime: '2030-01-31T10:19:00.000Z',
        Progress: { objectsTotal: 1 },
      }),
    };
    const scenario = join(tmp.path, 'scenario.json');
    await writeFile(
      scenario,
      JSON.stringify({
        log: join(tmp.path, 'calls.jsonl'),
        sfn: {
          StartExecution: [
            { executionArn: executionArn(NAME), startDate: '2030-01-31T10:00:00.000Z' },
            { $error: { name: 'ExecutionAlreadyExists', message: 'Execution Already Exists' } },
          ],
          DescribeExecution: execution,
          ListExecutions: { executions: [execution] },
        },
      }),
    );
    api = await startApi(['--state-machine-arn', STATE_MACHINE_ARN], {
      local: false,
      env: {
        BATCH_TRANSFORM_TEST_AWS_CLIENTS: 'test/client/fake-aws-module.ts',
        FAKE_AWS_SCENARIO: scenario,
      },
    });
  }, 60_000);

  afterAll(async () => {
    await api?.stop();
    await tmp?.remove();
  });

  it('starts the execution, waits, describes and lists it the way SageMaker answers, with its ARNs in the stack account', async () => {
    const out = await run(
      'python3',
      [SCENARIOS, 'deployed', JSON.stringify({ request })],
      clientEnv(api.url),
    );
    const r = JSON.parse(out.trim().split('\n').pop()!);
    const arn = `arn:aws:sagemaker:eu-west-1:123456789012:transform-job/${NAME}`;
    expect(r.created).toEqual({ TransformJobArn: arn });
    expect(r.waited).toBe('success');
    expect(r.described).toMatchObject({
      TransformJobName: NAME,
      TransformJobArn: arn,
      TransformJobStatus: 'Completed',
      ModelName: request.ModelName,
      MaxConcurrentTransforms: 4,
      MaxPayloadInMB: 6,
      BatchStrategy: 'MultiRecord',
      Environment: request.Environment,
      TransformInput: request.TransformInput,
      TransformOutput: { ...request.TransformOutput, AssembleWith: 'None' },
      TransformResources: request.TransformResources,
      CreationTime: { datetime: Date.parse('2030-01-31T10:00:01.000Z') / 1000 },
      TransformStartTime: { datetime: Date.parse('2030-01-31T10:01:00.000Z') / 1000 },
      TransformEndTime: { datetime: Date.parse('2030-01-31T10:19:00.000Z') / 1000 },
    });
    expect(r.listed.TransformJobSummaries).toEqual([
      expect.objectContaining({
        TransformJobName: NAME,
        TransformJobArn: arn,
        TransformJobStatus: 'Completed',
      }),
    ]);
    expect(r.duplicate.code).toBe('ResourceInUse');
    expect(r.createModel.code).toBe('ValidationException');
    // A state machine ARN alone does not say where the stack keeps created models.
    expect(r.createModel.message).toContain('--models-root');
    const calls = readFileSync(join(tmp.path, 'calls.jsonl'), 'utf8');
    expect(calls).toContain('"command":"StartExecution"');
  });
});
