import { GetExecutionHistoryCommand, type HistoryEvent } from '@aws-sdk/client-sfn';
import type { JobRef } from '../contract/state';
import { STATE_NAMES } from '../contract/state-names';

export interface SfnSender {
  send(command: GetExecutionHistoryCommand): Promise<{ events?: HistoryEvent[]; nextToken?: string }>;
}

/**
 * The job an execution validated: the `job` of the Validate step's output, read from the execution's
 * history. The execution name cannot stand in for it: a scheduled run's job name is derived from its
 * scheduled time by the validate stage. Undefined when Validate never succeeded (nothing to clean).
 */
export async function jobOfExecution(sfn: SfnSender, executionArn: string): Promise<JobRef | undefined> {
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new GetExecutionHistoryCommand({
        executionArn,
        includeExecutionData: true,
        maxResults: 100,
        ...(nextToken ? { nextToken } : {}),
      }),
    );
    for (const event of page.events ?? []) {
      const exited = event.stateExitedEventDetails;
      if (event.type !== 'TaskStateExited' || exited?.name !== STATE_NAMES.validate) continue;
      const output = exited.output ? (JSON.parse(exited.output) as { job?: JobRef }) : {};
      // A Validate that failed exits through its Catch with no job.
      return output.job;
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return undefined;
}
