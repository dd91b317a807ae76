import type { Capacity } from '../../src/contract/job';
import {
  type AwsvpcConfiguration,
  type DeploymentConfig,
  type DeploymentContext,
  type LaunchSpec,
  type ModelSpec,
  taskDefinitionFamily,
} from '../../src/contract/deployment';
import type { JobRef } from '../../src/contract/state';

export class DeploymentConfigError extends Error {
  override readonly name = 'DeploymentConfigError';
}

export function readDeploymentConfig(env: NodeJS.ProcessEnv = process.env): DeploymentConfig {
  const raw = env.DEPLOYMENT;
  if (!raw) throw new DeploymentConfigError('the DEPLOYMENT environment variable is not set');
  try {
    return JSON.parse(raw) as DeploymentConfig;
  } catch (e) {
    throw new DeploymentConfigError(
      `the DEPLOYMENT environment variable is not JSON: ${(e as Error).message}`,
    );
  }
}

export function deploymentContext(config: DeploymentConfig): DeploymentContext {
  return { ...config.context, local: false };
}

/**
 * Where and how a validated job's tasks run. Throws when the deployment has no task definition for
 * the job's model and capacity, which validation should have made impossible. A created model
 * (CreateModel) brings the task definition Validate registered for it and its own environment.
 */
export function launchSpecFor(
  job: JobRef,
  config: DeploymentConfig,
  created?: { readonly taskDefinition: string; readonly environment?: ModelSpec['environment'] },
): LaunchSpec {
  const { launch, context } = config;
  if (!created && !context.models[job.modelName])
    throw new DeploymentConfigError(`model "${job.modelName}" has no task definition in this deployment`);
  const capacity: Capacity = job.capacity;
  let taskDefinition: string | undefined;
  let provider: string | undefined;
  let network: AwsvpcConfiguration;
  const family = (ec2InstanceType?: string) =>
    taskDefinitionFamily(launch.taskDefinitionFamilyPrefix, job.modelName, ec2InstanceType);
  if (capacity.kind === 'fargate') {
    taskDefinition = created?.taskDefinition ?? family();
    provider = launch.fargateCapacityProvider;
    network = launch.network.fargate;
  } else if (capacity.kind === 'ec2') {
    provider = launch.ec2CapacityProviders[capacity.instanceType];
    taskDefinition = provider ? (created?.taskDefinition ?? family(capacity.instanceType)) : undefined;
    network = launch.network.ec2;
  } else {
    throw new DeploymentConfigError(`job "${job.jobName}" has local capacity, which a deployment cannot run`);
  }
  if (!taskDefinition || !provider) {
    throw new DeploymentConfigError(
      `job "${job.jobName}": instance type ${job.instanceType} (${capacity.kind === 'ec2' ? capacity.instanceType : 'Fargate'}) has no capacity provider or task definition for model "${job.modelName}" in this deployment`,
    );
  }
  const declared: ModelSpec['environment'] =
    (created ? created.environment : context.models[job.modelName]?.environment) ?? {};
  return {
    taskDefinition,
    capacityProviderStrategy: [{ CapacityProvider: provider, Weight: 1, Base: 0 }],
    networkConfiguration: { AwsvpcConfiguration: network },
    cpu: String(capacity.cpu),
    memory: String(capacity.memoryMiB),
    modelEnvironment: job.modelEnvironment.filter((e) => declared[e.Name] !== e.Value),
  };
}
