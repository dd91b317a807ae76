/**
 * The synthesized state machine as a place to run jobs: its definition run by
 * aws-local-stepfunctions, the real Lambda handlers in this process, and a local ECS that starts each
 * task's containers (the real sidecar beside the test model) as processes, all on the loopback S3
 * server. The helpers are the CDK suite's (test/cdk), imported unchanged; only ECS's control plane is
 * a stand-in. Imported only when a session asks for it (synthesis takes a while).
 */
import type { TransformJobDescription } from '../../src/contract/description';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { SIDECAR_ENTRY } from '../../src/local/worker';
import { type Asl, stateMachineDefinition } from '../cdk/definition';
import { bucketName, bucketNames, lambdaStates } from '../cdk/local-deployment';
import { LocalEcs } from '../cdk/local-ecs';
import { type LocalHandler, runLocally, STATE_NAMES } from '../cdk/local-execution';
import { type Synthesized, synthesize } from '../cdk/synth';
import { TEST_MODEL_COMMAND } from '../fixtures/models/start';
import type { S3Harness } from '../support/s3-server';
import type { Deployment, Execution } from './harness';
import { S3RVER_KEYS } from './local-runner';

const MODEL_IMAGE = 'registry.invalid/test-model:1';
const SIDECAR_IMAGE = 'registry.invalid/batch-transform-sidecar:1';

/** The stack synthesized for the harness: one model, `echo`, the test model upper-casing what it gets. */
export interface SynthesizedStack {
  readonly synth: Synthesized;
  readonly definition: Asl;
  readonly dataBucket: string;
  readonly workBucket: string;
  /** Every bucket the stack creates (the S3 server must have them). */
  readonly buckets: readonly string[];
}

export function synthesizeStack(): SynthesizedStack {
  const synth = synthesize({
    models: {
      echo: {
        image: ecs.ContainerImage.fromRegistry(MODEL_IMAGE),
        environment: { TEST_MODEL_UPPERCASE: '1' },
      },
    },
    sidecarImage: ecs.ContainerImage.fromRegistry(SIDECAR_IMAGE),
  });
  return {
    synth,
    definition: stateMachineDefinition(synth.json),
    dataBucket: bucketName(synth, synth.construct.storage.dataBucket!),
    workBucket: bucketName(synth, synth.construct.storage.workBucket),
    buckets: bucketNames(synth.json),
  };
}

export interface StateMachineDeployment extends Deployment {
  stop(): Promise<void>;
}

/**
 * The synthesized state machine as if deployed: each execution is a job, its RunTask states start
 * processes through the local ECS. `env` of an execution reaches its tasks' containers the way a
 * test makes a task misbehave (LocalEcs's `misbehave` hook), so the request stays the baseline's.
 */
export async function stateMachineDeployment(
  s3: S3Harness,
  stack: SynthesizedStack,
): Promise<StateMachineDeployment> {
  let current: { jobName: string; env: Readonly<Record<string, string>> } | undefined;
  const localEcs = await LocalEcs.start({
    template: stack.synth.json,
    images: {
      [MODEL_IMAGE]: { entryPoint: TEST_MODEL_COMMAND, portVariable: 'SAGEMAKER_BIND_TO_PORT' },
      [SIDECAR_IMAGE]: {
        entryPoint: [process.execPath, '--import', import.meta.resolve('tsx'), SIDECAR_ENTRY],
        command: ['run'],
      },
    },
    platformEnvironment: { AWS_ENDPOINT_URL_S3: s3.endpoint, ...S3RVER_KEYS },
    misbehave: (task) =>
      current && task.startedBy === current.jobName
        ? { model: { ...current.env }, sidecar: { FAULTS_RUN: current.env.FAULTS_RUN ?? '' } }
        : undefined,
  });
  const lambdas: Record<string, LocalHandler> = await lambdaStates(stack.synth, stack.definition, {
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ENDPOINT_URL_ECS: localEcs.endpoint,
    ...S3RVER_KEYS,
  });
  const workPrefix = (job: string) => `jobs/${job}/`;
  return {
    mode: 'sfn',
    dataBucket: stack.dataBucket,
    workBucket: stack.workBucket,
    workPrefix,
    modelName: 'echo',
    async execute(request, jobName, env): Promise<Execution> {
      current = { jobName, env };
      try {
        const outcome = await runLocally(
          stack.definition,
          request,
          { ...lambdas, [STATE_NAMES.runPartition]: localEcs.runTaskSync },
          { executionName: jobName },
        );
        // A failed execution's result is the summary FinalizeFailure wrote (read from the store, not
        // through the API a fault rule may still be failing).
        let description: TransformJobDescription | undefined;
        if (outcome.status === 'SUCCEEDED') description = outcome.output as TransformJobDescription;
        else {
          const path = join(s3.directory, stack.workBucket, 'jobs', jobName, 'summary.json._S3rver_object');
          description = await readFile(path, 'utf8').then(
            (t) => JSON.parse(t) as TransformJobDescription,
            () => undefined,
          );
        }
        return {
          ...(description ? { description } : {}),
          executionStatus: outcome.status,
          diagnostics:
            outcome.status === 'FAILED' ? `${outcome.error}: ${outcome.cause.slice(0, 300)}` : 'SUCCEEDED',
        };
      } finally {
        current = undefined;
      }
    },
    async stop() {
      await localEcs.stop();
    },
  };
}
