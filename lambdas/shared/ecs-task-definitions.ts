import {
  DescribeTaskDefinitionCommand,
  ECSClient,
  RegisterTaskDefinitionCommand,
  type RegisterTaskDefinitionCommandInput,
} from '@aws-sdk/client-ecs';
import type { TaskDefinitionLayout } from '../../src/deploy/task-layout';
import type { TaskDefinitionRegistry } from '../../src/lifecycle/created-models';

/** The subset of the ECS client this needs, so tests can stand in for ECS. */
export interface EcsRegistrySender {
  send(command: DescribeTaskDefinitionCommand | RegisterTaskDefinitionCommand): Promise<unknown>;
}

/** ECS answers DescribeTaskDefinition of a family it does not know with this ClientException. */
const UNKNOWN_FAMILY = /unable to describe task definition/i;

/** ECS's task definition registry, for the task definitions of created models. */
export class EcsTaskDefinitions implements TaskDefinitionRegistry {
  constructor(private readonly ecs: EcsRegistrySender = new ECSClient({})) {}

  async find(family: string): Promise<string | undefined> {
    try {
      const out = (await this.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: family }))) as {
        taskDefinition?: { taskDefinitionArn?: string; status?: string };
      };
      const found = out.taskDefinition;
      return found?.status === 'ACTIVE' ? found.taskDefinitionArn : undefined;
    } catch (e) {
      const err = e as Error;
      if (err.name === 'ClientException' && UNKNOWN_FAMILY.test(err.message)) return undefined;
      throw e;
    }
  }

  async register(definition: TaskDefinitionLayout): Promise<string> {
    const out = (await this.ecs.send(
      // The layout is ECS's own request shape; the SDK's types are mutable arrays of the same members.
      new RegisterTaskDefinitionCommand(definition as unknown as RegisterTaskDefinitionCommandInput),
    )) as { taskDefinition?: { taskDefinitionArn?: string } };
    const arn = out.taskDefinition?.taskDefinitionArn;
    if (!arn) throw new Error(`ECS registered ${definition.family} but answered with no task definition ARN`);
    return arn;
  }
}
