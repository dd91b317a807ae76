import type { CreatedModel, CreatedModelLaunch } from '../contract/deployment';
import type { Capacity } from '../contract/job';
import { createdModelsRoot, createdModelUri } from '../contract/layout';
import { layoutFamily, type TaskDefinitionLayout, taskDefinitionLayout } from '../deploy/task-layout';
import type { Storage } from '../storage/storage';
import { readJsonIfExists } from '../storage/json';

/**
 * Models made with CreateModel on a deployed stack, as the Validate step runs them: read from the
 * models location, and given a task definition registered from the same layout the construct
 * synthesizes for a declared model (src/deploy/task-layout.ts).
 */

/**
 * ECS's task definition registry, behind one small interface so tests can stand in for ECS
 * (lambdas/shared/ecs-task-definitions.ts is the real one).
 */
export interface TaskDefinitionRegistry {
  /** The ARN of the latest ACTIVE revision of `family`, or undefined when it has none. */
  find(family: string): Promise<string | undefined>;
  /** Registers the definition (a new revision of its family) and returns its ARN. */
  register(definition: TaskDefinitionLayout): Promise<string>;
}

/** The created model of that name in the deployment whose jobs' work root is `workRoot`, or undefined. */
export async function readCreatedModel(
  storage: Storage,
  workRoot: string,
  modelName: string,
): Promise<CreatedModel | undefined> {
  return readJsonIfExists<CreatedModel>(storage, createdModelUri(createdModelsRoot(workRoot), modelName));
}

/**
 * The task definition a created model runs with at `capacity`: the declared models' layout, its
 * family named after a hash of that layout, so equal layouts share one family.
 */
export function createdModelLayout(
  model: CreatedModel,
  capacity: Capacity,
  launch: CreatedModelLaunch,
): TaskDefinitionLayout {
  if (capacity.kind === 'local') throw new Error('a created model runs on a deployment, not locally');
  const size =
    capacity.kind === 'fargate'
      ? ({ compatibility: 'FARGATE' } as const)
      : ({
          compatibility: 'EC2',
          cpu: capacity.cpu,
          memoryMiB: capacity.memoryMiB,
          gpus: capacity.gpus,
          neuronDevices: capacity.neuronDevices,
        } as const);
  const layout = taskDefinitionLayout(
    '',
    {
      name: model.ModelName,
      image: model.Image,
      ...(model.ModelDataUrl ? { modelDataUrl: model.ModelDataUrl } : {}),
      ...(model.Environment ? { environment: model.Environment } : {}),
    },
    size,
    launch.platform,
  );
  return { ...layout, family: layoutFamily(launch.familyPrefix, layout) };
}

/**
 * The ARN of a task definition with this layout: the family's latest revision when there is one (a
 * family holds one layout only, its name being the layout's hash), else a new registration. Two
 * executions registering at once both succeed, as two identical revisions.
 */
export async function ensureTaskDefinition(
  registry: TaskDefinitionRegistry,
  layout: TaskDefinitionLayout,
): Promise<string> {
  return (await registry.find(layout.family)) ?? (await registry.register(layout));
}
