import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE } from '../src/contract/metrics';

export interface TransformMonitoringProps {
  readonly stateMachine: sfn.StateMachine;
  readonly cluster: ecs.ICluster;
  /** Notified when executions fail. @default the alarm has no action */
  readonly alarmTopic?: sns.ITopic;
  /** Dashboard name. @default generated */
  readonly dashboardName?: string;
}

const PERIOD = Duration.minutes(1);

/**
 * A dashboard of the sidecars' metrics (embedded metric format, namespace `BatchTransform`,
 * dimensioned by JobName) summed over the jobs running, the worker tasks and the executions; and an
 * alarm on executions that failed or timed out.
 */
export class TransformMonitoring extends Construct {
  readonly dashboard: cloudwatch.Dashboard;
  readonly failedExecutionsAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: TransformMonitoringProps) {
    super(scope, id);
    const { stateMachine } = props;

    const failed = new cloudwatch.MathExpression({
      label: 'Failed or timed-out executions',
      expression: 'failed + timedOut',
      usingMetrics: {
        failed: stateMachine.metricFailed({ period: Duration.minutes(5), statistic: 'Sum' }),
        timedOut: stateMachine.metricTimedOut({ period: Duration.minutes(5), statistic: 'Sum' }),
      },
      period: Duration.minutes(5),
    });
    this.failedExecutionsAlarm = new cloudwatch.Alarm(this, 'FailedExecutions', {
      alarmDescription:
        'A batch transform job failed or timed out: its execution output names the FailureReason.',
      metric: failed,
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    if (props.alarmTopic) this.failedExecutionsAlarm.addAlarmAction(new actions.SnsAction(props.alarmTopic));

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      ...(props.dashboardName ? { dashboardName: props.dashboardName } : {}),
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      graph('Records per second (all jobs)', [
        perSecond('Records', 'records/s'),
        perSecond('FailedRecords', 'failed records/s'),
      ]),
      graph('Bytes per second (all jobs)', [perSecond('BytesIn', 'read'), perSecond('BytesOut', 'written')]),
      graph('Invocation latency (ms, per job)', [perJob('InvocationLatency', 'Average')]),
    );
    this.dashboard.addWidgets(
      graph('Model errors (all jobs)', [
        total('ModelErrors4xx', '4xx'),
        total('ModelErrors5xx', '5xx'),
        total('ModelTimeouts', 'timeouts'),
        total('ObjectsFailed', 'failed objects'),
      ]),
      graph('Running worker tasks', [
        new cloudwatch.Metric({
          namespace: 'ECS/ContainerInsights',
          metricName: 'TaskCount',
          dimensionsMap: { ClusterName: props.cluster.clusterName },
          statistic: 'Maximum',
          period: PERIOD,
          label: 'tasks',
        }),
      ]),
      graph('Executions', [
        stateMachine.metricStarted({ period: Duration.minutes(5), label: 'started' }),
        stateMachine.metricSucceeded({ period: Duration.minutes(5), label: 'succeeded' }),
        stateMachine.metricFailed({ period: Duration.minutes(5), label: 'failed' }),
        stateMachine.metricAborted({ period: Duration.minutes(5), label: 'stopped' }),
      ]),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        alarms: [this.failedExecutionsAlarm],
        width: 24,
        height: 3,
      }),
    );
  }
}

function graph(title: string, left: cloudwatch.IMetric[]): cloudwatch.GraphWidget {
  return new cloudwatch.GraphWidget({ title, left, width: 8, height: 6, leftYAxis: { min: 0 } });
}

/** Every job's series of a sidecar metric: the metric is dimensioned by JobName, so it is found by SEARCH. */
function search(metric: string, statistic: string): string {
  return `SEARCH('{${METRICS_NAMESPACE},JobName} MetricName="${metric}"', '${statistic}', ${PERIOD.toSeconds()})`;
}

function total(metric: string, label: string): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: `SUM(${search(metric, 'Sum')})`,
    label,
    period: PERIOD,
  });
}

function perSecond(metric: string, label: string): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: `SUM(${search(metric, 'Sum')}) / ${PERIOD.toSeconds()}`,
    label,
    period: PERIOD,
  });
}

function perJob(metric: string, statistic: string): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({ expression: search(metric, statistic), label: '', period: PERIOD });
}
