import { Duration, TimeZone } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { formatProblems } from '../src/job/problems';
import { checkRequest } from '../src/job/validate';
import { expandScheduled } from '../src/lifecycle/validate';

/** A job that runs on a schedule. */
export interface JobScheduleProps {
  /**
   * When it runs: an EventBridge Scheduler expression, `cron(minutes hours day-of-month month
   * day-of-week year)` or `rate(value unit)`, e.g. `cron(0 2 * * ? *)` for 02:00 every day.
   */
  readonly expression: string;
  /** IANA time zone the cron expression is read in, e.g. `Europe/Berlin`. @default 'UTC' */
  readonly timeZone?: string;
  /**
   * The job: a CreateTransformJob request. Its TransformJobName is a base (each run appends its
   * scheduled time, or expands a `{{ScheduledTime:…}}` placeholder); S3Uri and S3OutputPath may use
   * `{{ScheduledTime:yyyy/MM/dd}}`-style placeholders (docs/DEPLOY.md).
   */
  readonly request: Readonly<Record<string, unknown>>;
  /** @default true */
  readonly enabled?: boolean;
  /** @default none */
  readonly description?: string;
}

export interface TransformSchedulesProps {
  readonly schedules: Readonly<Record<string, JobScheduleProps>>;
  readonly stateMachine: sfn.IStateMachine;
  /** What validation will check the templates against, so a bad template fails at synthesis. */
  readonly validation: {
    readonly modelNames: readonly string[];
    readonly enabledInstanceTypes: readonly string[];
    readonly maxInstanceCount: number;
  };
}

/**
 * One EventBridge Scheduler schedule per entry. Each run starts the state machine with
 * `{ request, scheduledTime, scheduleExecutionId }`: Scheduler fills in the time it fired and its own
 * run id (a scheduled StartExecution cannot choose the execution name, so the job's unique name is
 * derived from the time by the validate stage).
 */
export class TransformSchedules extends Construct {
  readonly schedules: ReadonlyMap<string, scheduler.Schedule>;

  constructor(scope: Construct, id: string, props: TransformSchedulesProps) {
    super(scope, id);
    const created = new Map<string, scheduler.Schedule>();
    for (const [name, spec] of Object.entries(props.schedules)) {
      checkTemplate(name, spec, props.validation);
      const schedule = new scheduler.Schedule(this, name, {
        description:
          spec.description ??
          `Batch transform job "${String(spec.request.TransformJobName)}" (${spec.expression})`,
        schedule: scheduler.ScheduleExpression.expression(
          spec.expression,
          TimeZone.of(spec.timeZone ?? 'UTC'),
        ),
        enabled: spec.enabled ?? true,
        target: new schedulerTargets.StepFunctionsStartExecution(props.stateMachine, {
          input: scheduler.ScheduleTargetInput.fromObject({
            request: spec.request,
            scheduledTime: scheduler.ContextAttribute.scheduledTime,
            scheduleExecutionId: scheduler.ContextAttribute.executionId,
          }),
          // A StartExecution that failed is retried for a while; a run older than an hour is dropped
          // rather than started late on stale input.
          retryAttempts: 3,
          maxEventAge: Duration.hours(1),
        }),
      });
      created.set(name, schedule);
    }
    this.schedules = created;
  }
}

const EXPRESSION = /^(cron\(.+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\(.+\))$/;

/** Fails synthesis with every problem of a schedule's job template, as validation would report them. */
function checkTemplate(
  name: string,
  spec: JobScheduleProps,
  ctx: TransformSchedulesProps['validation'],
): void {
  if (!/^[0-9a-zA-Z-_.]{1,64}$/.test(name)) {
    throw new Error(`schedules["${name}"]: a schedule name is 1–64 letters, digits, '-', '_' or '.'`);
  }
  if (!EXPRESSION.test(spec.expression)) {
    throw new Error(
      `schedules["${name}"].expression "${spec.expression}" is not a Scheduler expression; use cron(0 2 * * ? *) or rate(1 day)`,
    );
  }
  // The expansion the validate stage applies to a scheduled run, for a sample time.
  const request = expandScheduled(spec.request, new Date(Date.UTC(2030, 0, 31, 23, 59, 59)));
  const result = checkRequest(request, {
    modelNames: ctx.modelNames,
    enabledInstanceTypes: ctx.enabledInstanceTypes,
    maxInstanceCount: ctx.maxInstanceCount,
    local: false,
  });
  if (!result.ok) throw new Error(`schedules["${name}"].request: ${formatProblems(result.problems)}`);
}
