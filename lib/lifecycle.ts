import { Arn, ArnFormat, Aws, Duration, Names, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { DeploymentConfig } from '../src/contract/deployment';
import { STATE_NAMES } from '../src/contract/state-names';
import type { TransformCompute } from './compute';
import { CONTAINERS, type ModelTasks } from './models';
import { acknowledge, acknowledgeWildcards } from './nag';
import { locationUri, type TransformStorage } from './storage';
import { TransformFunction } from './transform-function';

/**
 * The job lifecycle, a standard Step Functions workflow whose execution name is the TransformJobName:
 *
 *   Validate ─► Plan ─► RunPartitions ─► Assemble ─► Finalize ─► Cleanup ─► IsCompleted ─┬─► Succeeded
 *                       (Distributed Map over the plan's                                  └─► TransformJobFailed
 *                        partition items in S3; each item a
 *                        child execution: Partition, retried,
 *                        around RunPartition: ECS RunTask .sync,
 *                        its failure judged by the sidecar's exit code)
 *
 *   any failure of Validate … Finalize (Catch → $.failure)
 *     ─► FinalizeFailure ─► CleanupAfterFailure ─► JobFailed
 *        (on its own failure: ReasonFromCause)
 *
 * Cleanup runs on success too (it removes the shard scratch). A stopped or timed-out execution runs
 * no Catch, so an EventBridge rule on the execution's status change runs the cleanup Lambda as well.
 *
 * The state carries only small references (Step Functions caps a state at 256 KB):
 *   $.job     JobRef (src/contract/state.ts)         $.launch   LaunchSpec (src/contract/deployment.ts)
^ *   $.plan    PlanRef                               $.result   DescribeTransformJob-shaped (finalize)
 *   $.failure the caught {Error, Cause}               $.cleanup  CleanupReport
 * Every Lambda state gets the whole state as its event; each handler reads what it needs.
 */
export const STATES = STATE_NAMES;

/**
 * Retries of a partition's ECS task. Throttling and capacity errors of RunTask (ECS answers "Rate
 * exceeded" or a placement failure while an Auto Scaling group is still at zero) are retried longer
 * than a task that ran and failed, which is retried twice: a second failure of the same partition is
 * rarely transient. Full jitter spreads the retries of a wide Map.
 */
const ECS_API_RETRY = {
  errors: ['ECS.AmazonECSException', 'ECS.ThrottlingException', 'ECS.ServerException'],
  interval: 10,
  maxAttempts: 6,
  maxDelay: 300,
} as const;
/**
 * RunTask answered with `failures` (no capacity for the task yet, a quota reached, an Auto Scaling
 * group still at zero that needs minutes to launch an instance): Step Functions reports it as
 * AmazonECS.Unknown. Retried for about half an hour (1, 2, 4, 8, 10, 10 minutes), not seconds.
 */
const CAPACITY_RETRY = {
  errors: ['AmazonECS.Unknown'],
  interval: 60,
  maxAttempts: 6,
  maxDelay: 600,
} as const;
const TASK_FAILURE_RETRY = {
  // States.Timeout: a task that ran past partitionTimeout is stopped and its partition run again.
  errors: ['States.TaskFailed', 'States.Timeout'],
  interval: 30,
  maxAttempts: 2,
  maxDelay: 300,
} as const;

/**
 * Copying large shard outputs into `.out` objects may take minutes: Lambda's longest timeout, for
 * Assemble and for FinalizeFailure, which assembles what finished before it finalizes.
 */
const ASSEMBLE_TIMEOUT = Duration.minutes(15);

/** The Plan Lambda's V8 heap cap, in MiB: the figure `npm run scale` measures the plan with. */
export const PLAN_HEAP_MIB = 768;

export interface TransformLifecycleProps {
  readonly storage: TransformStorage;
  readonly compute: TransformCompute;
  readonly models: ModelTasks;
  /** The validate Lambda's view of the deployment (DEPLOYMENT environment variable). */
  readonly deployment: DeploymentConfig;
  readonly logRetention: logs.RetentionDays;
  /** Longest a partition's task may run before it is stopped and retried. */
  readonly partitionTimeout: Duration;
  /** X-Ray tracing of executions. */
  readonly tracing: boolean;
}

export class TransformLifecycle extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly stateMachineName: string;
  readonly functions: {
    readonly validate: TransformFunction;
    readonly plan: TransformFunction;
    readonly assemble: TransformFunction;
    readonly finalize: TransformFunction;
    readonly cleanup: TransformFunction;
  };
  readonly logGroup: logs.LogGroup;
  readonly cleanupRule: events.Rule;

  private readonly props: TransformLifecycleProps;
  /** Where every failure of Validate … Finalize goes: FinalizeFailure ─► CleanupAfterFailure ─► JobFailed. */
  private readonly failurePath: sfn.IChainable;

  constructor(scope: Construct, id: string, props: TransformLifecycleProps) {
    super(scope, id);
    this.props = props;
    // A name fixed at synthesis (unique per stack and path) lets the cleanup Lambda's policy name the
    // executions of this state machine without a reference cycle through the definition.
    this.stateMachineName = Names.uniqueResourceName(this, { maxLength: 80, separator: '-' });

    // Functions live in their own scope: the states take the plain names (Validate, Plan, …).
    const stages = new Construct(this, 'Stages');
    const fn = (
      name: string,
      description: string,
      extra: Partial<{ timeout: Duration; environment: Record<string, string> }> = {},
    ) =>
      new TransformFunction(stages, name, {
        entry: `lambdas/${name.toLowerCase()}/handler.ts`,
        description,
        logRetention: props.logRetention,
        ...extra,
      });
    this.functions = {
      validate: fn('Validate', 'Batch transform: validate a job request', {
        environment: { DEPLOYMENT: Stack.of(this).toJsonString(props.deployment) },
      }),
      // Listing a large input may take minutes: Lambda's longest timeout.
      // The heap cap keeps a million-object plan within the function's 1,024 MB: uncapped, V8 grew
      // the heap lazily to 1.4–1.6 GiB; capped, the plan peaked at 922 MiB (docs/RELIABILITY.md).
      plan: fn('Plan', 'Batch transform: plan the partitions of a job', {
        timeout: Duration.minutes(15),
        environment: {
          NODE_OPTIONS: `--max-old-space-size=${PLAN_HEAP_MIB}`,
          // DataCaptureConfig destinations must lie under these (src/job/validate.ts).
          OUTPUT_ROOTS: Stack.of(this).toJsonString(props.storage.outputs.map(locationUri)),
        },
      }),
      assemble: fn('Assemble', 'Batch transform: assemble sharded outputs', {
        timeout: ASSEMBLE_TIMEOUT,
      }),
      // FinalizeFailure assembles what finished before it finalizes (src/lifecycle/failure-path.ts):
      // it needs the time Assemble has, not the 5 minutes a summary would.
      finalize: fn('Finalize', 'Batch transform: write the job summary and status', {
        timeout: ASSEMBLE_TIMEOUT,
      }),
      cleanup: fn('Cleanup', 'Batch transform: stop tasks, abort uploads, remove scratch', {
        environment: { CLUSTER_ARN: props.compute.cluster.clusterArn },
      }),
    };
    this.grantStages();

    this.failurePath = this.buildFailurePath();
    const definition = this.buildValidatePhase()
      .next(this.buildPlanPhase())
      .next(this.buildTransformPhase())
      .next(this.buildAssemblePhase())
      .next(this.buildFinalizePhase())
      .next(this.buildCleanupPhase());

    this.logGroup = new logs.LogGroup(this, 'ExecutionLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: this.stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'Batch transform job: validate, plan, run partitions on ECS, assemble, finalize, clean up',
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      // Every event, without its data: a job's states carry its Environment (the request, the
      // model's overrides in $.launch), which may hold settings nobody should read in a log group.
      // The execution history keeps the data for those allowed to read it.
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      tracingEnabled: props.tracing,
    });
    this.grantRunTask(this.stateMachine.role);
    this.cleanupRule = this.buildStoppedExecutionCleanup();

    if (!props.tracing) {
      acknowledge(
        this.stateMachine,
        'AwsSolutions-SF2',
        'X-Ray tracing is off by default (set tracing: true): every step of a job is in the execution history and its logs, and traces would bill per execution.',
      );
    }
    this.acknowledgeWildcards();
  }

  /** Every wildcard the lifecycle's roles hold, each named exactly, with its reason. */
  private acknowledgeWildcards(): void {
    const stack = Stack.of(this);
    const machine = this.stateMachine;
    const machineName = Arn.split(machine.stateMachineArn, ArnFormat.COLON_RESOURCE_NAME).resourceName!;
    const executions = (resourceName: string) =>
      stack.formatArn({
        service: 'states',
        resource: 'execution',
        resourceName,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    acknowledgeWildcards(machine, [
      ...Object.values(this.functions).map((f) => ({
        resource: `${f.function.functionArn}:*`,
        reason: `Invoking the ${f.node.id} Lambda allows its versions and aliases (\`<function arn>:*\`), as Step Functions calls them.`,
      })),
      {
        resource: '*',
        reason:
          'CloudWatch Logs delivery (logs:CreateLogDelivery, …) and X-Ray have no resource-level permissions.',
      },
      {
        resource: this.clusterTasksArn(),
        reason:
          'ECS task ids are only known once RunTask has started them; the permission is limited to tasks of this cluster.',
      },
      {
        resource: this.taskDefinitionsArn(),
        reason:
          "Every revision of the deployment's own task definition families (`<prefix>_*`): jobs run a family's latest ACTIVE revision, and one resource stays within IAM's policy size whatever the number of models.",
      },
      {
        resource: `arn:${Aws.PARTITION}:s3:::${this.props.storage.workBucket.bucketName}/*`,
        reason:
          "The Distributed Map's ItemReader reads the plan's partition items from the work bucket, which holds only this deployment's records (granted by CDK on the whole bucket).",
      },
      {
        resource: `${executions(machineName)}:*`,
        reason: 'The Distributed Map describes and stops its own child executions, named at run time.',
      },
      {
        resource: executions(`${machineName}/*:*`),
        reason: 'The Distributed Map redrives its own map runs, labelled at run time.',
      },
    ]);
    acknowledgeWildcards(this.functions.cleanup.role, [
      {
        resource: '*',
        reason: 'ecs:ListTasks has no resource-level permissions; it is limited to the cluster by condition.',
      },
      {
        resource: this.clusterTasksArn(),
        reason:
          "ECS task ids are only known at run time; cleanup stops the job's tasks of this cluster only.",
      },
      {
        resource: executions(`${this.stateMachineName}:*`),
        reason:
          'Executions of this state machine only; execution names are the job names, known at run time.',
      },
    ]);
  }

  // ─── Phases ──────────────────────────────────────────────────────────────────────────────────────

  /**
   * Validate: the execution input is either a CreateTransformJob request (console) or a schedule's
   * `{ request, scheduledTime }`; the handler accepts both. The execution name goes along so a
   * console execution named differently from its job is rejected. Replaces the state with
   * `{ job, launch }`.
   */
  private buildValidatePhase(): sfn.INextable & sfn.IChainable {
    return this.lambda(STATES.validate, this.functions.validate, {
      payload: sfn.TaskInput.fromObject({
        input: sfn.JsonPath.entirePayload,
        executionName: sfn.JsonPath.executionName,
      }),
      // No ResultPath: the result replaces the input (the default, the same as "$").
    });
  }

  /** Plan: lists the input, writes the plan, returns a PlanRef with one `{ index }` per partition. */
  private buildPlanPhase(): sfn.INextable & sfn.IChainable {
    return this.lambda(STATES.plan, this.functions.plan, { resultPath: '$.plan' });
  }

  /**
   * Transform: one ECS task per partition, at most InstanceCount at a time. RunTask's task definition,
   * capacity provider strategy and networking come from the state (they depend on the model and the
   * instance type), which the L2 EcsRunTask cannot express, hence the raw `ecs:runTask.sync` state.
   *
   * A Distributed Map, not an inline one: inline mode runs at most 40 iterations at once, so a job
   * with more instances ran in waves. Distributed mode runs up to 10,000 child executions at once
   * (Step Functions quotas), so InstanceCount tasks start together, as many as ECS lets us. Each
   * child is a standard execution (a partition can run for hours, longer than an express one's
   * 5 minutes) with its own history: the parent's history grows by a few Map-run events whatever
   * the partition count, and a child's by its own retries only. The items are read from the plan's
   * partition items in the work bucket (ItemReader), so the state never carries a list that grows
   * with the job. Any failed item fails the Map run (tolerated failures 0), which the Catch sends
   * down the failure path as before.
   */
  private buildTransformPhase(): sfn.INextable & sfn.IChainable {
    const runPartition = new sfn.CustomState(this, STATES.runPartition, {
      stateJson: {
        Type: 'Task',
        Resource: `arn:${Aws.PARTITION}:states:::ecs:runTask.sync`,
        Parameters: {
          Cluster: this.props.compute.cluster.clusterArn,
          'TaskDefinition.$': '$.launch.taskDefinition',
          'CapacityProviderStrategy.$': '$.launch.capacityProviderStrategy',
          'NetworkConfiguration.$': '$.launch.networkConfiguration',
          // Lets cleanup find and stop a job's tasks (ListTasks startedBy).
          'StartedBy.$': '$.job.jobName',
          // The request's Tags on each task (SageMaker tags the job's resources), beside the
          // deployment's own tags that the task definition carries.
          'Tags.$': '$.job.tags',
          PropagateTags: 'TASK_DEFINITION',
          Overrides: {
            'Cpu.$': '$.launch.cpu',
            'Memory.$': '$.launch.memory',
            ContainerOverrides: [
              {
                Name: CONTAINERS.sidecar,
                Environment: [
                  { Name: 'JOB_URI', 'Value.$': '$.job.jobUri' },
                  { Name: 'PLAN_URI', 'Value.$': '$.planUri' },
                  { Name: 'PARTITION_INDEX', 'Value.$': "States.Format('{}', $.index)" },
                ],
              },
              { Name: CONTAINERS.model, 'Environment.$': '$.launch.modelEnvironment' },
            ],
          },
        },
        // The full task description is several KB; a Map of 100 of them would outgrow 256 KB.
        ResultSelector: { 'TaskArn.$': '$.TaskArn' },
        TimeoutSeconds: this.props.partitionTimeout.toSeconds(),
      },
    });
    runPartition.addRetry({
      errors: [...ECS_API_RETRY.errors],
      interval: Duration.seconds(ECS_API_RETRY.interval),
      maxAttempts: ECS_API_RETRY.maxAttempts,
      backoffRate: 2,
      maxDelay: Duration.seconds(ECS_API_RETRY.maxDelay),
      jitterStrategy: sfn.JitterType.FULL,
    });
    runPartition.addRetry({
      errors: [...CAPACITY_RETRY.errors],
      interval: Duration.seconds(CAPACITY_RETRY.interval),
      maxAttempts: CAPACITY_RETRY.maxAttempts,
      backoffRate: 2,
      maxDelay: Duration.seconds(CAPACITY_RETRY.maxDelay),
      jitterStrategy: sfn.JitterType.FULL,
    });

    // Step Functions fails a `.sync` RunTask when any container exits non-zero, and model servers
    // (gunicorn, TorchServe) exit 143 when ECS stops them once the sidecar has finished. So a failed
    // task is judged by the partition's own result: the sidecar, the only essential container, exits
    // 0 exactly when the partition ran to its end. Anything else fails the partition with the task's
    // error and cause unchanged, and the partition is retried as a whole.
    runPartition.addCatch(this.buildPartitionJudgement(), {
      errors: ['States.TaskFailed'],
      resultPath: '$.taskFailure',
    });
    const partition = new sfn.Parallel(this, STATES.partition, {
      comment: "One partition's ECS task, judged by the sidecar's exit code, retried as a whole",
      resultPath: sfn.JsonPath.DISCARD,
    });
    partition.branch(runPartition);
    partition.addRetry({
      errors: [...TASK_FAILURE_RETRY.errors],
      interval: Duration.seconds(TASK_FAILURE_RETRY.interval),
      maxAttempts: TASK_FAILURE_RETRY.maxAttempts,
      backoffRate: 2,
      maxDelay: Duration.seconds(TASK_FAILURE_RETRY.maxDelay),
      jitterStrategy: sfn.JitterType.FULL,
    });

    const map = new sfn.DistributedMap(this, STATES.runPartitions, {
      comment: 'One ECS task per partition of the plan, at most InstanceCount at once',
      itemReader: new sfn.S3JsonItemReader({
        bucket: this.props.storage.workBucket,
        key: sfn.JsonPath.stringAt('$.plan.partitionItemsKey'),
      }),
      mapExecutionType: sfn.StateMachineType.STANDARD,
      maxConcurrencyPath: '$.job.instanceCount',
      itemSelector: {
        index: sfn.JsonPath.numberAt('$$.Map.Item.Value.index'),
        job: sfn.JsonPath.objectAt('$.job'),
        launch: sfn.JsonPath.objectAt('$.launch'),
        planUri: sfn.JsonPath.stringAt('$.plan.planUri'),
      },
      resultPath: sfn.JsonPath.DISCARD,
    });
    map.itemProcessor(partition);
    map.addCatch(this.failurePath, { resultPath: '$.failure' });
    return map;
  }

  /**
   * After RunPartition failed with States.TaskFailed (its cause: the stopped task's description as
   * JSON): succeed when the sidecar exited 0, else fail with the same error and cause.
   */
  private buildPartitionJudgement(): sfn.IChainable {
    const failed = new sfn.Fail(this, STATES.partitionFailed, {
      errorPath: '$.failure.Error',
      causePath: '$.failure.Cause',
    });
    // The sidecar's entry, always in the task's description; its ExitCode is missing when it never
    // ran (a dependency failed), so that rule comes first.
    const sidecarExitCode = '$.sidecar[0].ExitCode';
    const done = new sfn.Choice(this, STATES.isPartitionDone)
      .when(sfn.Condition.not(sfn.Condition.isPresent(sidecarExitCode)), failed)
      .when(sfn.Condition.numberEquals(sidecarExitCode, 0), new sfn.Succeed(this, STATES.partitionDone))
      .otherwise(failed);
    const readSidecar = new sfn.Pass(this, STATES.readSidecarResult, {
      parameters: {
        'sidecar.$': `$.task.Containers[?(@.Name == '${CONTAINERS.sidecar}')]`,
        'failure.$': '$.failure',
      },
    }).next(done);
    const isTask = new sfn.Choice(this, STATES.isPartitionTask)
      .when(sfn.Condition.isPresent('$.task.Containers'), readSidecar)
      .otherwise(failed);
    return new sfn.Pass(this, STATES.readPartitionTask, {
      parameters: {
        'task.$': 'States.StringToJson($.taskFailure.Cause)',
        'failure.$': '$.taskFailure',
      },
    }).next(isTask);
  }

  /** Assemble: concatenates shard outputs into each sharded object's `.out`. */
  private buildAssemblePhase(): sfn.INextable & sfn.IChainable {
    return this.lambda(STATES.assemble, this.functions.assemble, { resultPath: '$.assembled' });
  }

  /** Finalize: writes the summary, returns the DescribeTransformJob-shaped result. */
  private buildFinalizePhase(): sfn.INextable & sfn.IChainable {
    return this.lambda(STATES.finalize, this.functions.finalize, { resultPath: '$.result' });
  }

  /**
   * Cleanup, then the job's status decides the end. A cleanup that fails does not fail a completed
   * job (its outputs are complete; what is left is scratch that expires by lifecycle rule).
   */
  private buildCleanupPhase(): sfn.IChainable {
    const cleanup = new tasks.LambdaInvoke(this, STATES.cleanup, {
      lambdaFunction: this.functions.cleanup.function,
      payloadResponseOnly: true,
      resultPath: '$.cleanup',
    });
    const succeeded = new sfn.Succeed(this, STATES.succeeded, { outputPath: '$.result' });
    const failed = new sfn.Fail(this, STATES.transformJobFailed, {
      error: 'TransformJobFailed',
      causePath: '$.result.FailureReason',
    });
    const isCompleted = new sfn.Choice(this, STATES.isCompleted)
      .when(sfn.Condition.stringEquals('$.result.TransformJobStatus', 'Completed'), succeeded)
      .otherwise(failed);
    cleanup.addCatch(isCompleted, { resultPath: '$.cleanupFailure' });
    return cleanup.next(isCompleted);
  }

  /**
   * FinalizeFailure records the failure in the job's summary and turns the caught error into a
   * FailureReason (≤ 1024 characters, naming the object and the cause); cleanup follows; the
   * execution fails with the original error name and that reason. If FinalizeFailure itself cannot
   * run, ReasonFromCause keeps the raw cause so the execution still ends Failed with one.
   */
  private buildFailurePath(): sfn.IChainable {
    const jobFailed = new sfn.Fail(this, STATES.jobFailed, {
      errorPath: '$.failure.Error',
      causePath: '$.result.FailureReason',
    });
    const cleanup = new tasks.LambdaInvoke(this, STATES.cleanupAfterFailure, {
      lambdaFunction: this.functions.cleanup.function,
      payloadResponseOnly: true,
      resultPath: '$.cleanup',
    });
    cleanup.addCatch(jobFailed, { resultPath: '$.cleanupFailure' });
    const reasonFromCause = new sfn.Pass(this, STATES.reasonFromCause, {
      parameters: { TransformJobStatus: 'Failed', 'FailureReason.$': '$.failure.Cause' },
      resultPath: '$.result',
    });
    const finalize = new tasks.LambdaInvoke(this, STATES.finalizeFailure, {
      lambdaFunction: this.functions.finalize.function,
      payloadResponseOnly: true,
      resultPath: '$.result',
    });
    finalize.addCatch(reasonFromCause, { resultPath: '$.finalizeFailure' });
    reasonFromCause.next(cleanup);
    return finalize.next(cleanup).next(jobFailed);
  }

  // ─── Pieces ──────────────────────────────────────────────────────────────────────────────────────

  private lambda(
    name: string,
    fn: TransformFunction,
    opts: { payload?: sfn.TaskInput; resultPath?: string },
  ): tasks.LambdaInvoke {
    const task = new tasks.LambdaInvoke(this, name, {
      lambdaFunction: fn.function,
      payloadResponseOnly: true,
      ...(opts.payload ? { payload: opts.payload } : {}),
      ...(opts.resultPath ? { resultPath: opts.resultPath } : {}),
    });
    task.addCatch(this.failurePath, { resultPath: '$.failure' });
    return task;
  }

  /** Each stage gets exactly the storage access its stage module uses. */
  private grantStages(): void {
    const { storage } = this.props;
    const f = this.functions;
    storage.grantWork(f.validate.role, 'read', 'write', 'list');
    storage.grant(f.validate.role, [storage.jobNames], 'read', 'write');
    storage.grant(f.plan.role, storage.inputs, 'read', 'list');
    // Extensions.ResumeFrom: the earlier job's outputs are confirmed from a listing (src/lifecycle/resume.ts).
    storage.grant(f.plan.role, storage.outputs, 'list');
    storage.grantWork(f.plan.role, 'read', 'write', 'list');
    storage.grantWork(f.assemble.role, 'read', 'list');
    storage.grant(f.assemble.role, storage.outputs, 'write');
    storage.grantWork(f.finalize.role, 'read', 'write', 'list');
    // The failure path's assembly writes finished objects' `.out`, as Assemble does; DataCaptureConfig's
    // manifests go under an output location too (src/lifecycle/capture.ts).
    storage.grant(f.finalize.role, storage.outputs, 'write');
    storage.grantWork(f.cleanup.role, 'read', 'write', 'delete', 'list', 'abortUploads');
    storage.grant(f.cleanup.role, storage.outputs, 'abortUploads');
    this.grantStopTasks(f.cleanup.role);
    const stack = Stack.of(this);
    f.cleanup.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        // A stopped execution's job is read from its history (the Validate step's output).
        actions: ['states:GetExecutionHistory'],
        resources: [
          stack.formatArn({
            service: 'states',
            resource: 'execution',
            resourceName: `${this.stateMachineName}:*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
  }

  private clusterTasksArn(): string {
    return Stack.of(this).formatArn({
      service: 'ecs',
      resource: 'task',
      resourceName: `${this.props.compute.cluster.clusterName}/*`,
    });
  }

  /** Every revision of the deployment's task definition families: `task-definition/<prefix>_*:*`. */
  private taskDefinitionsArn(): string {
    return Stack.of(this).formatArn({
      service: 'ecs',
      resource: 'task-definition',
      resourceName: `${this.props.models.familyPrefix}_*:*`,
    });
  }

  private grantStopTasks(role: iam.IRole): void {
    const cluster = this.props.compute.cluster.clusterArn;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:ListTasks'],
        resources: ['*'],
        conditions: { ArnEquals: { 'ecs:cluster': cluster } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:StopTask', 'ecs:DescribeTasks'],
        resources: [this.clusterTasksArn()],
        conditions: { ArnEquals: { 'ecs:cluster': cluster } },
      }),
    );
  }

  /** What `ecs:runTask.sync` needs: run the deployment's task definitions, pass their roles, watch the task. */
  private grantRunTask(role: iam.IRole): void {
    const stack = Stack.of(this);
    const { models, compute } = this.props;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:RunTask'],
        // Every revision of every family of the deployment, in one resource whatever the number of
        // models and instance types (one ARN per family outgrew IAM's policy size at about 60 models).
        resources: [this.taskDefinitionsArn()],
        conditions: { ArnEquals: { 'ecs:cluster': compute.cluster.clusterArn } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:StopTask', 'ecs:DescribeTasks'],
        resources: [this.clusterTasksArn()],
      }),
    );
    // RunTask with Tags needs ecs:TagResource on the task it creates (ECS tagging authorization).
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:TagResource'],
        resources: [this.clusterTasksArn()],
        conditions: { StringEquals: { 'ecs:CreateAction': 'RunTask' } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [models.taskRole.roleArn, models.executionRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        // The managed rule through which Step Functions learns that a task stopped.
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [
          stack.formatArn({
            service: 'events',
            resource: 'rule',
            resourceName: 'StepFunctionsGetEventsForECSTaskRule',
          }),
        ],
      }),
    );
  }

  /**
   * StopExecution and execution timeouts run no Catch: this rule runs the cleanup Lambda for every
   * execution that ends ABORTED, TIMED_OUT or FAILED (a failed one was cleaned already; cleanup is
   * safe to run twice). The handler finds the job from the execution's history.
   */
  private buildStoppedExecutionCleanup(): events.Rule {
    return new events.Rule(this, 'CleanupAfterStoppedExecution', {
      description: 'Batch transform: clean up after an execution that was stopped, timed out or failed',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          stateMachineArn: [this.stateMachine.stateMachineArn],
          status: ['ABORTED', 'TIMED_OUT', 'FAILED'],
        },
      },
      targets: [
        new targets.LambdaFunction(this.functions.cleanup.function, {
          event: events.RuleTargetInput.fromObject({
            executionArn: events.EventField.fromPath('$.detail.executionArn'),
            status: events.EventField.fromPath('$.detail.status'),
          }),
          retryAttempts: 8,
          maxEventAge: Duration.hours(6),
        }),
      ],
    });
  }
}
