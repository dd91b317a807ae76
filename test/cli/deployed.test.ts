import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyCounters } from '../../src/contract/results';
import { type CommandInput, executionArn, STATE_MACHINE_ARN, stackWithOutputs } from '../client/fake-aws';
import type { FakeAwsScenario } from '../client/fake-aws-module';
import { runCli } from '../support/cli';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * The deployed verbs run as a user runs them (the real entry point, spawned). AWS is reached only
 * through the test-only BATCH_TRANSFORM_TEST_AWS_CLIENTS module (fake Step Functions and
 * CloudFormation clients); the environment carries no credentials, no profile and no region.
 */

const request = JSON.parse(readFileSync('test/job/seed-request.json', 'utf8'));
const NAME: string = request.TransformJobName;
const ARN = executionArn(NAME);
const STARTED = '2030-01-31T10:00:00.000Z';
const STOPPED = '2030-01-31T10:20:00.000Z';

let dir: TempDir;
let scenarioCount = 0;
beforeAll(async () => {
  dir = await makeTempDir('deployed-cli');
});
afterAll(async () => {
  await dir.remove();
});

function noCredentials(): NodeJS.ProcessEnv {
  const nowhere = join(dir.path, 'no-such-aws-file');
  return {
    AWS_ACCESS_KEY_ID: '',
    AWS_SECRET_ACCESS_KEY: '',
    AWS_SESSION_TOKEN: '',
    AWS_PROFILE: '',
    AWS_REGION: '',
    AWS_DEFAULT_REGION: '',
    AWS_CONFIG_FILE: nowhere,
    AWS_SHARED_CREDENTIALS_FILE: nowhere,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '',
    AWS_CONTAINER_CREDENTIALS_FULL_URI: '',
    AWS_WEB_IDENTITY_TOKEN_FILE: '',
    BATCH_TRANSFORM_STATE_MACHINE_ARN: '',
    BATCH_TRANSFORM_TEST_AWS_CLIENTS: '',
  };
}

interface Call {
  service: string;
  command: string;
  input: CommandInput;
}

/** Runs the CLI against fake AWS clients that answer from `scenario`; returns what it printed and every AWS call. */
async function runDeployed(args: string[], scenario: Omit<FakeAwsScenario, 'log'>, stdin?: string) {
  scenarioCount += 1;
  const scenarioFile = join(dir.path, `scenario-${scenarioCount}.json`);
  const log = join(dir.path, `calls-${scenarioCount}.jsonl`);
  await writeFile(scenarioFile, JSON.stringify({ ...scenario, log }));
  const r = await runCli(args, {
    ...(stdin !== undefined ? { stdin } : {}),
    env: {
      ...noCredentials(),
      BATCH_TRANSFORM_TEST_AWS_CLIENTS: 'test/client/fake-aws-module.ts',
      FAKE_AWS_SCENARIO: scenarioFile,
    },
  });
  const calls: Call[] = existsSync(log)
    ? readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
    : [];
  return { ...r, calls };
}

function execution(status: string, extra: Record<string, unknown> = {}) {
  return {
    executionArn: ARN,
    stateMachineArn: STATE_MACHINE_ARN,
    name: NAME,
    status,
    startDate: STARTED,
    input: JSON.stringify(request),
    ...(status === 'RUNNING' ? {} : { stopDate: STOPPED }),
    ...extra,
  };
}

const completed = {
  TransformJobName: NAME,
  TransformJobStatus: 'Completed',
  ModelName: request.ModelName,
  TransformInput: request.TransformInput,
  TransformOutput: request.TransformOutput,
  TransformResources: request.TransformResources,
  CreationTime: '2030-01-31T10:00:01.000Z',
  TransformStartTime: '2030-01-31T10:01:00.000Z',
  TransformEndTime: '2030-01-31T10:19:00.000Z',
  Progress: {
    ...emptyCounters(),
    objectsTotal: 3,
    objectsCompleted: 3,
    records: 300,
    bytesIn: 3 * 1048576,
    bytesOut: 1048576,
    skippedObjects: 0,
  },
  FailedObjects: [],
  SummaryUri: `s3://work/jobs/${NAME}/summary.json`,
};
const stack = { DescribeStacks: stackWithOutputs() };
const noHistory = { GetExecutionHistory: { events: [] } };

describe('deployed verbs: usage', () => {
  it.each(['submit', 'describe', 'wait', 'stop', 'list'])(
    'answers %s --help with usage, the ways to find the stack and the exit codes',
    async (verb) => {
      const r = await runCli([verb, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: batch-transform ${verb} `));
      for (const text of ['--stack-name', '--state-machine-arn', '--region', '--profile', 'Exit codes:'])
        expect(r.stdout).toContain(text);
    },
  );

  it.each([
    [['describe'], "error: missing required argument 'name'"],
    [['submit'], "error: missing required argument 'job'"],
    [['stop', 'a', 'b'], 'error: too many arguments'],
    [
      ['list', '--status-equals', 'Running'],
      "argument 'Running' is invalid. Allowed choices are Completed, Failed, InProgress, Stopped, Stopping.",
    ],
    [['list', '--sort-by', 'Size'], 'Allowed choices are Name, CreationTime, Status.'],
    [['list', '--max-results', '101'], 'expected a whole number from 1 to 100.'],
    [['list', '--creation-time-after', 'soon'], 'expected a time such as 2030-01-31'],
    [['wait', NAME, '--poll-interval', '-1'], 'expected a number of seconds ≥ 0.'],
  ])('rejects %j with exit 2 and says what is wrong, before any AWS call', async (args, message) => {
    const r = await runDeployed(args, {});
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.calls).toEqual([]);
  });
});

describe('batch-transform submit', () => {
  it('checks the request first: every problem, exit 2, and nothing is started', async () => {
    const bad = { ...request, TransformJobName: 'bad_name', TransformOutput: {} };
    const r = await runDeployed(['submit', '-'], { sfn: {}, cloudformation: stack }, JSON.stringify(bad));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Transform job "bad_name" has 2 problems:');
    expect(r.stderr).toMatch(/^ {2}- TransformJobName: /m);
    expect(r.stderr).toMatch(/^ {2}- TransformOutput\.S3OutputPath: /m);
    expect(r.calls).toEqual([]);
  });

  it('prints the problems as a JSON array of {path, message} with --json', async () => {
    const bad = { ...request, ModelName: 'a.b' };
    const r = await runDeployed(['submit', '-', '--json'], {}, JSON.stringify(bad));
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual([{ path: 'ModelName', message: expect.any(String) }]);
  });

  it("starts an execution named after the job with the request as input, on the stack's state machine, with no AWS credentials around", async () => {
    const r = await runDeployed(['submit', 'test/job/seed-request.json'], {
      cloudformation: stack,
      sfn: { StartExecution: { executionArn: ARN, startDate: STARTED } },
    });
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([
      { service: 'cloudformation', command: 'DescribeStacks', input: { StackName: 'BatchTransform' } },
      {
        service: 'sfn',
        command: 'StartExecution',
        input: { stateMachineArn: STATE_MACHINE_ARN, name: NAME, input: JSON.stringify(request) },
      },
    ]);
    expect(r.stdout).toBe(
      `Started transform job ${NAME}\n  execution: ${ARN}\n  follow it: batch-transform wait ${NAME}\n`,
    );
  });

  it('says clearly that a job of that name already exists', async () => {
    const r = await runDeployed(
      ['submit', 'test/job/seed-request.json', '--state-machine-arn', STATE_MACHINE_ARN],
      {
        sfn: {
          StartExecution: { $error: { name: 'ExecutionAlreadyExists', message: 'Execution Already Exists' } },
        },
      },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `batch-transform: a job named "${NAME}" already exists; job names are unique, so give this one another TransformJobName\n`,
    );
  });

  it('with --wait polls until the job ends and exits 1 with the reason when it failed', async () => {
    const reason = `Transform job "${NAME}": 1 of 3 input object(s) failed: s3://my-ml-bucket/batch-input/b.csv: model answered 500`;
    const r = await runDeployed(
      [
        'submit',
        'test/job/seed-request.json',
        '--wait',
        '--poll-interval',
        '0.01',
        '--state-machine-arn',
        STATE_MACHINE_ARN,
      ],
      {
        sfn: {
          StartExecution: { executionArn: ARN, startDate: STARTED },
          DescribeExecution: [
            execution('RUNNING'),
            execution('RUNNING'),
            execution('FAILED', { error: 'TransformJobFailed', cause: reason }),
          ],
          ...noHistory,
        },
      },
    );
    expect(r.code).toBe(1);
    expect(r.calls.filter((c) => c.command === 'DescribeExecution')).toHaveLength(3);
    expect(r.stderr).toContain(`Started transform job ${NAME}`);
    expect(r.stdout).toMatch(new RegExp(`^Transform job ${NAME}: Failed\n {2}reason: {4}`));
    expect(r.stdout).toContain(reason);
  });
});

describe('batch-transform describe', () => {
  it('prints status, counters, locations and times for people', async () => {
    const r = await runDeployed(['describe', NAME, '--state-machine-arn', STATE_MACHINE_ARN], {
      sfn: { DescribeExecution: execution('SUCCEEDED', { output: JSON.stringify(completed) }) },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `Transform job ${NAME}: Completed`,
        '  objects:   3 completed, 0 failed, 0 skipped, of 3',
        '  records:   300 (0 isolated as errors); 3.00 MB in, 1.00 MB out',
        '  model:     xgboost-reviews-model on 2 × ml.m5.xlarge',
        '  input:     s3://my-ml-bucket/batch-input/',
        '  outputs:   s3://my-ml-bucket/batch-output/',
        '  created:   2030-01-31T10:00:01.000Z',
        '  started:   2030-01-31T10:01:00.000Z',
        '  ended:     2030-01-31T10:19:00.000Z',
        `  execution: ${ARN}`,
        '',
      ].join('\n'),
    );
  });

  it('prints the DescribeTransformJob-shaped description with --json', async () => {
    const r = await runDeployed(['describe', NAME, '--json', '--state-machine-arn', STATE_MACHINE_ARN], {
      sfn: { DescribeExecution: execution('SUCCEEDED', { output: JSON.stringify(completed) }) },
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      ...completed,
      MaxConcurrentTransforms: 4,
      MaxPayloadInMB: 6,
      BatchStrategy: 'MultiRecord',
      Environment: request.Environment,
      ExecutionArn: ARN,
    });
  });

  it('says when progress is unavailable for a running job', async () => {
    const r = await runDeployed(['describe', NAME, '--state-machine-arn', STATE_MACHINE_ARN], {
      sfn: { DescribeExecution: execution('RUNNING'), ...noHistory },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `Transform job ${NAME}: InProgress\n  progress:  unavailable (the job has not been validated yet)\n`,
    );
  });

  it('exits 2 with one clear line for a job that does not exist', async () => {
    const r = await runDeployed(['describe', 'nope', '--state-machine-arn', STATE_MACHINE_ARN], {
      sfn: {
        DescribeExecution: { $error: { name: 'ExecutionDoesNotExist', message: 'Execution Does Not Exist' } },
      },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'batch-transform: no transform job named "nope" (state machine BatchTransform-Lifecycle-abc123)\n',
    );
  });

  it('exits 2 with a clear message and no stack trace when no stack can be found', async () => {
    const r = await runDeployed(['describe', NAME, '--stack-name', 'Gone', '--region', 'eu-west-1'], {
      cloudformation: {
        DescribeStacks: { $error: { name: 'ValidationError', message: 'Stack with id Gone does not exist' } },
      },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'batch-transform: no stack named "Gone" in eu-west-1; deploy it (npx cdk deploy), name another stack with --stack-name, or give the state machine with --state-machine-arn or BATCH_TRANSFORM_STATE_MACHINE_ARN\n',
    );
    expect(r.calls.map((c) => c.command)).toEqual(['DescribeStacks']);
  });
});

describe('batch-transform wait', () => {
  it.each([
    { status: 'Completed', code: 0, last: execution('SUCCEEDED', { output: JSON.stringify(completed) }) },
    { status: 'Failed', code: 1, last: execution('TIMED_OUT', { error: 'States.Timeout' }) },
    { status: 'Stopped', code: 1, last: execution('ABORTED') },
  ])('polls until the job is $status and exits $code', async ({ status, code, last }) => {
    const r = await runDeployed(
      ['wait', NAME, '--json', '--poll-interval', '0', '--state-machine-arn', STATE_MACHINE_ARN],
      {
        sfn: { DescribeExecution: [execution('RUNNING'), last], ...noHistory },
      },
    );
    expect(r.code).toBe(code);
    expect(JSON.parse(r.stdout).TransformJobStatus).toBe(status);
    expect(r.calls.filter((c) => c.command === 'DescribeExecution')).toHaveLength(2);
    // Standard error is not a terminal: no progress bar.
    expect(r.stderr).not.toContain('%');
    if (status === 'Failed')
      expect(JSON.parse(r.stdout).FailureReason).toBe(
        'InternalServerError: the execution ran longer than the state machine allows',
      );
  });
});

describe('batch-transform stop', () => {
  it('stops the execution and reports the job Stopped', async () => {
    const r = await runDeployed(['stop', NAME, '--state-machine-arn', STATE_MACHINE_ARN], {
      sfn: {
        DescribeExecution: [execution('RUNNING'), execution('ABORTED')],
        StopExecution: { stopDate: STOPPED },
        ...noHistory,
      },
    });
    expect(r.code).toBe(0);
    expect(r.calls.filter((c) => c.command === 'StopExecution').map((c) => c.input)).toEqual([
      { executionArn: ARN },
    ]);
    expect(r.stdout).toMatch(new RegExp(`^Transform job ${NAME}: Stopped\n`));
  });
});

describe('batch-transform list', () => {
  it('lists with the status as statusFilter, filters by name, sorts and limits', async () => {
    const item = (name: string, status: string, start: string) => ({
      executionArn: executionArn(name),
      stateMachineArn: STATE_MACHINE_ARN,
      name,
      status,
      startDate: start,
      stopDate: '2030-02-01T00:00:00.000Z',
    });
    const r = await runDeployed(
      [
        'list',
        '--status-equals',
        'Failed',
        '--name-contains',
        'NIGHTLY',
        '--sort-by',
        'Name',
        '--sort-order',
        'Ascending',
        '--max-results',
        '2',
        '--json',
        '--state-machine-arn',
        STATE_MACHINE_ARN,
      ],
      {
        sfn: {
          // A scenario file holds data only: the answers come in call order, FAILED's listing first.
          ListExecutions: [
            {
              executions: [
                item('nightly-c', 'FAILED', '2030-01-03T00:00:00Z'),
                item('adhoc', 'FAILED', '2030-01-02T00:00:00Z'),
              ],
            },
            {
              executions: [
                item('nightly-a', 'TIMED_OUT', '2030-01-01T00:00:00Z'),
                item('nightly-b', 'TIMED_OUT', '2029-12-31T00:00:00Z'),
              ],
            },
          ],
        },
      },
    );
    expect(r.code).toBe(0);
    expect(r.calls.map((c) => c.input)).toEqual([
      { stateMachineArn: STATE_MACHINE_ARN, maxResults: 100, statusFilter: 'FAILED' },
      { stateMachineArn: STATE_MACHINE_ARN, maxResults: 100, statusFilter: 'TIMED_OUT' },
    ]);
    const { TransformJobSummaries } = JSON.parse(r.stdout);
    expect(TransformJobSummaries).toEqual([
      {
        TransformJobName: 'nightly-a',
        TransformJobStatus: 'Failed',
        CreationTime: '2030-01-01T00:00:00.000Z',
        TransformEndTime: '2030-02-01T00:00:00.000Z',
        LastModifiedTime: '2030-02-01T00:00:00.000Z',
        ExecutionArn: executionArn('nightly-a'),
      },
      expect.objectContaining({ TransformJobName: 'nightly-b' }),
    ]);
  });

  it('prints a table for people', async () => {
    const r = await runDeployed(['list', '--state-machine-arn', STATE_MACHINE_ARN], {
      sfn: {
        ListExecutions: {
          executions: [
            {
              executionArn: executionArn('job-2'),
              name: 'job-2',
              status: 'RUNNING',
              startDate: '2030-01-02T00:00:00Z',
            },
            {
              executionArn: executionArn('job-1'),
              name: 'job-1',
              status: 'SUCCEEDED',
              startDate: '2030-01-01T00:00:00Z',
              stopDate: '2030-01-01T01:00:00Z',
            },
          ],
        },
      },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'NAME   STATUS      CREATED                   ENDED',
        'job-2  InProgress  2030-01-02T00:00:00.000Z  -',
        'job-1  Completed   2030-01-01T00:00:00.000Z  2030-01-01T01:00:00.000Z',
        '',
      ].join('\n'),
    );
  });
});

describe('deployed verbs with the real AWS SDK and nothing configured', () => {
  // No fake clients here: the SDK's own clients fail before sending anything, and the user is told why.
  it('says how to provide credentials when there are none', async () => {
    const r = await runCli(['describe', NAME, '--state-machine-arn', STATE_MACHINE_ARN], {
      env: noCredentials(),
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `batch-transform: describing transform job "${NAME}": no AWS credentials found; configure a profile (aws configure, then --profile or AWS_PROFILE) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n`,
    );
    expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('says how to give a region when the stack must be looked up and none is configured', async () => {
    const r = await runCli(['list'], { env: noCredentials() });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'batch-transform: reading the outputs of stack "BatchTransform": no AWS region configured; pass --region (or the region option) or set AWS_REGION\n',
    );
  });
});
