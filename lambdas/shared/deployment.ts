import type { Capacity } from '../../src/job/normalized';
import type { DeploymentContext, JobRef, ModelSpec } from '../../src/lifecycle/types';

/**
 * What a deployment tells its Lambdas, in one environment variable (`DEPLOYMENT`, JSON) written by the
 * CDK construct: the validation context (models, enabled EC2 types, limits, work root) and the launch
 * targets (task definitions, capacity providers, task networking) the Map state's RunTask uses.
 *
 * Lambda caps a function's environment at 4 KB, so this document holds only what validation needs:
 * each model's environment (to build the model container's), never images or ModelDataUrls (those
 * live in the task definitions). The construct checks the size at synthesis.
 */
export interface DeploymentConfig {
  readonly context: Omit<DeploymentContext, 'local'>;
  readonly launch: LaunchTargets;
}

export interface AwsvpcConfiguration {
  readonly Subnets: readonly string[];
  readonly SecurityGroups: readonly string[];
  readonly AssignPublicIp: 'ENABLED' | 'DISABLED';
}

export interface LaunchTargets {
  /** Capacity provider for Fargate-sized tasks (`FARGATE`). */
  readonly fargateCapacityProvider: string;
  /** EC2 instance type (e.g. `g5.xlarge`) → the name of its Auto Scaling capacity provider. */
  readonly ec2CapacityProviders: Readonly<Record<string, string>>;
  /** ModelName → task definition ARNs: one for Fargate, one per enabled EC2 instance type. */
  readonly taskDefinitions: Readonly<
    Record<string, { readonly fargate: string; readonly ec2: Readonly<Record<string, string>> }>
  >;
  /** Task networking. EC2 tasks in awsvpc mode cannot take a public IP, so the two may differ. */
  readonly network: { readonly fargate: AwsvpcConfiguration; readonly ec2: AwsvpcConfiguration };
}

/** Everything the RunTask state needs that depends on the job: carried in the state as `$.launch`. */
export interface LaunchSpec {
  readonly taskDefinition: string;
  readonly capacityProviderStrategy: ReadonlyArray<{
    readonly CapacityProvider: string;
    readonly Weight: number;
    readonly Base: number;
  }>;
  readonly networkConfiguration: { readonly AwsvpcConfiguration: AwsvpcConfiguration };
  /** Task-level size overrides (strings, as ECS wants them). */
  readonly cpu: string;
  readonly memory: string;
  /**
   * Environment overrides for the model container: the job's model environment minus the entries
   * the task definition already carries with the same value (the model's own), which keeps the
   * RunTask overrides document under ECS's 8 KiB cap for longer.
   */
  readonly modelEnvironment: ReadonlyArray<{ readonly Name: string; readonly Value: string }>;
}

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
 * the job's model and capacity, which validation should have made impossible.
 */
export function launchSpecFor(job: JobRef, config: DeploymentConfig): LaunchSpec {
  const { launch, context } = config;
  const defs = launch.taskDefinitions[job.modelName];
  if (!defs)
    throw new DeploymentConfigError(`model "${job.modelName}" has no task definition in this deployment`);
  const capacity: Capacity = job.capacity;
  let taskDefinition: string | undefined;
  let provider: string | undefined;
  let network: AwsvpcConfiguration;
  if (capacity.kind === 'fargate') {
    taskDefinition = defs.fargate;
    provider = launch.fargateCapacityProvider;
    network = launch.network.fargate;
  } else if (capacity.kind === 'ec2') {
    taskDefinition = defs.ec2[capacity.instanceType];
    provider = launch.ec2CapacityProviders[capacity.instanceType];
    network = launch.network.ec2;
  } else {
    throw new DeploymentConfigError(`job "${job.jobName}" has local capacity, which a deployment cannot run`);
  }
  if (!taskDefinition || !provider) {
    throw new DeploymentConfigError(
      `job "${job.jobName}": instance type ${job.instanceType} (${capacity.kind === 'ec2' ? capacity.instanceType : 'Fargate'}) has no capacity provider or task definition for model "${job.modelName}" in this deployment`,
    );
  }
  const declared: ModelSpec['environment'] = context.models[job.modelName]?.environment ?? {};
  return {
    taskDefinition,
    capacityProviderStrategy: [{ CapacityProvider: provider, Weight: 1, Base: 0 }],
    networkConfiguration: { AwsvpcConfiguration: network },
    cpu: String(capacity.cpu),
    memory: String(capacity.memoryMiB),
    modelEnvironment: job.modelEnvironment.filter((e) => declared[e.Name] !== e.Value),
  };
}
