import { appendFileSync, readFileSync } from 'node:fs';
import type { AwsClients } from '../../src/client/aws';
import { FakeAwsClient, type FakeHandler } from './fake-aws';

/**
 * TEST ONLY. The module the spawned CLI loads through BATCH_TRANSFORM_TEST_AWS_CLIENTS (see
 * src/cli/deployed.ts): fake Step Functions and CloudFormation clients whose answers come from the
 * scenario file named by FAKE_AWS_SCENARIO, and which append every command they get to the
 * scenario's `log` file (one JSON line per call) for the test to read back.
 */
export interface FakeAwsScenario {
  readonly sfn?: Record<string, FakeHandler>;
  readonly cloudformation?: Record<string, FakeHandler>;
  /** Where each call is appended as `{"service","command","input"}`. */
  readonly log: string;
}

export const SCENARIO_ENV = 'FAKE_AWS_SCENARIO';

/** The SDK's timestamps are Dates; JSON carries them as ISO strings. */
const DATE_FIELDS = new Set(['startDate', 'stopDate', 'timestamp', 'CreationTime']);

export function awsClients(): AwsClients {
  const file = process.env[SCENARIO_ENV];
  if (!file) throw new Error(`${SCENARIO_ENV} must name a scenario file`);
  const scenario = JSON.parse(readFileSync(file, 'utf8'), (key, value) =>
    DATE_FIELDS.has(key) && typeof value === 'string' ? new Date(value) : value,
  ) as FakeAwsScenario;
  const log = (service: string) => (call: { command: string; input: unknown }) =>
    appendFileSync(scenario.log, `${JSON.stringify({ service, ...call })}\n`);
  return {
    sfn: new FakeAwsClient('sfn', scenario.sfn ?? {}, log('sfn')),
    cloudFormation: new FakeAwsClient('cloudformation', scenario.cloudformation ?? {}, log('cloudformation')),
  };
}
