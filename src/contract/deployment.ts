/** What a deployment is made of, as the construct, Validate and the RunTask state see it. */
/** A model a deployment knows: what a ModelName resolves to. */
export interface ModelSpec {
  /** Container image (registry URI) for deployed runs; unused locally. */
  readonly image?: string;
  /** `s3://…/model.tar.gz` fetched and extracted to /opt/ml/model before the model starts. */
  readonly modelDataUrl?: string;
  readonly environment?: Readonly<Record<string, string>>;
}

/** What validation needs to know about the deployment it runs in. */
export interface DeploymentContext {
  readonly models: Readonly<Record<string, ModelSpec>>;
  /** ml.* types backed by EC2 capacity in this deployment (Fargate-sized types are always available). */
  readonly enabledInstanceTypes: readonly string[];
  /** Upper bound of TransformResources.InstanceCount. @default 100 (SageMaker's cap) */
  readonly maxInstanceCount: number;
  /** Where jobs' work locations are created: `<workRoot>/<jobName>/`. */
  readonly workRoot: string;
  /**
   * Where job names are reserved, `<jobNamesRoot><jobName>.json`, outside any expiring prefix so a
   * name stays taken for as long as the deployment exists. @default no reservation (local runs)
   */
  readonly jobNamesRoot?: string;
  /** Local runs accept file:// locations and run every instance type locally. */
  readonly local: boolean;
  /** Models made with CreateModel: where they are kept and which images they may use. @default none */
  readonly createdModels?: CreatedModelPolicy;
}

/**
 * Which models CreateModel may make on a deployed stack. They are kept beside the jobs' work root,
 * `createdModelsRoot(workRoot)` (src/contract/layout.ts): derived, not carried, because this document
 * must fit a Lambda environment.
 */
export interface CreatedModelPolicy {
  /**
   * Image URI patterns a created model may use; `*` matches any run of characters, except `/` in
   * the registry's host name (src/deploy/model-images.ts).
   */
  readonly images: readonly string[];
}

/** A model made with CreateModel on a deployed stack, as stored at `createdModelUri`. */
export interface CreatedModel {
  readonly ModelName: string;
  readonly Image: string;
  readonly ModelDataUrl?: string;
  readonly Environment?: Readonly<Record<string, string>>;
  readonly ModelArn: string;
  /** ISO 8601. */
  readonly CreationTime: string;
  /** The CreateModel request as it was given: DescribeModel answers with it. */
  readonly request: Readonly<Record<string, unknown>>;
}

/** What every model task gets from its deployment: its roles, the sidecar, where its logs go. */
export interface TaskPlatform {
  readonly sidecarImage: string;
  readonly taskRoleArn: string;
  readonly executionRoleArn: string;
  /** The awslogs group of every container. */
  readonly logGroup: string;
  readonly region: string;
}

/** What registering a created model's task definitions takes. */
export interface CreatedModelLaunch {
  /** Every such family is `<familyPrefix><layout hash>`: IAM scopes RegisterTaskDefinition and RunTask to it. */
  readonly familyPrefix: string;
  readonly platform: TaskPlatform;
}

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
  /**
   * What every task definition family of the deployment begins with: a model's family for a
   * capacity is `taskDefinitionFamily(prefix, model, capacity)`. Every model of `context.models` has
   * one for Fargate and one per key of `ec2CapacityProviders`.
   */
  readonly taskDefinitionFamilyPrefix: string;
  /** Task networking. EC2 tasks in awsvpc mode cannot take a public IP, so the two may differ. */
  readonly network: { readonly fargate: AwsvpcConfiguration; readonly ec2: AwsvpcConfiguration };
  /** How Validate registers the task definition of a created model. @default created models cannot run */
  readonly createdModels?: CreatedModelLaunch;
}

/**
 * The task definition family of a model on Fargate (`ec2InstanceType` undefined) or on an EC2
 * instance type (`g5.xlarge`). RunTask is given the family, not a revision's ARN: ECS runs its latest
 * ACTIVE revision, so a job started before a redeploy (which registers a new revision and deregisters
 * the old one) still starts its later tasks and retries. The separator `_` appears in no ModelName
 * and no instance type, so two models never share a family.
 */
export function taskDefinitionFamily(prefix: string, modelName: string, ec2InstanceType?: string): string {
  return `${prefix}_${modelName}_${ec2InstanceType ? ec2InstanceType.replaceAll('.', '-') : 'fargate'}`;
}

/** Everything the RunTask state needs that depends on the job: carried in the state as `$.launch`. */
export interface LaunchSpec {
  /** The task definition family (RunTask runs its latest ACTIVE revision), never a revision's ARN. */
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
