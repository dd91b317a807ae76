import { createdModelLayout, ensureTaskDefinition } from '../../src/lifecycle/created-models';
import { validateJob } from '../../src/lifecycle/validate';
import type { JobRef, ValidateEvent } from '../../src/contract/state';
import type { LaunchSpec } from '../../src/contract/deployment';
import {
  DeploymentConfigError,
  deploymentContext,
  launchSpecFor,
  readDeploymentConfig,
} from '../shared/deployment';
import { EcsTaskDefinitions } from '../shared/ecs-task-definitions';
import { deployedStorage } from '../shared/storage';

/** What the Validate state sends: the execution input, whatever its shape, and the execution's name. */
export interface ValidateInvocation {
  readonly input: unknown;
  readonly executionName?: string;
}

let registry: EcsTaskDefinitions | undefined;

/**
 * The Validate step: checks the request (src/lifecycle/validate.ts), stores the normalized job and
 * returns the new state: the JobRef and where its tasks run. A job whose model was made with
 * CreateModel runs with a task definition registered here, from the declared models' layout.
 */
export async function handler(event: ValidateInvocation): Promise<{ job: JobRef; launch: LaunchSpec }> {
  const config = readDeploymentConfig();
  const { job, createdModel } = await validateJob(
    validateEvent(event),
    deploymentContext(config),
    deployedStorage(),
  );
  if (!createdModel) return { job, launch: launchSpecFor(job, config) };
  const launch = config.launch.createdModels;
  if (!launch) throw new DeploymentConfigError('this deployment names no way to run created models');
  registry ??= new EcsTaskDefinitions();
  const taskDefinition = await ensureTaskDefinition(
    registry,
    createdModelLayout(createdModel, job.capacity, launch),
  );
  return {
    job,
    launch: launchSpecFor(job, config, {
      taskDefinition,
      ...(createdModel.Environment ? { environment: createdModel.Environment } : {}),
    }),
  };
}

/**
 * The execution input is either a bare CreateTransformJob request (the console, the CLI) or the
 * envelope a schedule sends, `{ request, scheduledTime, scheduleExecutionId }`.
 */
export function validateEvent(event: ValidateInvocation): ValidateEvent {
  const input = event.input;
  const executionName = event.executionName ? { executionName: event.executionName } : {};
  if (isEnvelope(input)) {
    return {
      request: input.request,
      ...executionName,
      ...(typeof input.scheduledTime === 'string' ? { scheduledTime: input.scheduledTime } : {}),
    };
  }
  return { request: input, ...executionName };
}

function isEnvelope(input: unknown): input is { request: unknown; scheduledTime?: unknown } {
  return typeof input === 'object' && input !== null && 'request' in input && !('TransformJobName' in input);
}
