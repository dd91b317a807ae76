import { ECSClient, ListTasksCommand, StopTaskCommand } from '@aws-sdk/client-ecs';
import type { TaskControl } from '../../src/lifecycle/cleanup';

/** ECS caps StopTask's reason at 255 characters. */
const STOP_REASON_MAX = 255;

/** The subset of the ECS client this needs, so tests can stand in for ECS. */
export interface EcsSender {
  send(command: ListTasksCommand | StopTaskCommand): Promise<unknown>;
}

/**
 * Stops a job's ECS tasks: the state machine starts every partition's task with `startedBy` set to
 * the TransformJobName, so ListTasks by `startedBy` finds exactly this job's tasks (pending ones
 * included: their desired status is RUNNING too).
 */
export class EcsTaskControl implements TaskControl {
  constructor(
    private readonly cluster: string,
    private readonly ecs: EcsSender = new ECSClient({}),
  ) {}

  async stopJobTasks(jobName: string, reason: string): Promise<number> {
    const arns: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = (await this.ecs.send(
        new ListTasksCommand({
          cluster: this.cluster,
          startedBy: jobName,
          desiredStatus: 'RUNNING',
          maxResults: 100,
          ...(nextToken ? { nextToken } : {}),
        }),
      )) as { taskArns?: string[]; nextToken?: string };
      arns.push(...(page.taskArns ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    const text = `${reason} (${jobName})`.slice(0, STOP_REASON_MAX);
    for (const task of arns) {
      await this.ecs.send(new StopTaskCommand({ cluster: this.cluster, task, reason: text }));
    }
    return arns.length;
  }
}
