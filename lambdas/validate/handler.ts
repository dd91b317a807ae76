import { validateStage } from '../../src/lifecycle/validate';
import type { JobRef, ValidateEvent } from '../../src/contract/state';
import type { LaunchSpec } from '../../src/contract/deployment';
import { deploymentContext, launchSpecFor, readDeploymentConfig } from '../shared/deployment';
import { deployedStorage } from '../shared/storage';

/** What the Validate state sends: the execution input, whatever its shape, and the execution's name. */
export interface ValidateInvocation {
  readonly input: unknown;
  readonly executionName?: string;
}

/**
 * The Validate step: checks the request (src/lifecycle/validate.ts), stores the normalized job and
 * returns the new state: the JobRef and where its tasks run.
 */
export async function handler(event: ValidateInvocation): Promise<{ job: JobRef; launch: LaunchSpec }> {
  const config = readDeploymentConfig();
  const job = await validateStage(validateEvent(event), deploymentContext(config), deployedStorage());
  return { job, launch: launchSpecFor(job, config) };
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
