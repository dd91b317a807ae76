import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { BatchTransform, type JobScheduleProps } from './batch-transform';
import { repositoryImage } from './images';

export interface BatchTransformStackProps extends StackProps {
  /** ml.* types with EC2 capacity (GPU and large CPU sizes). @default [] */
  readonly ec2InstanceTypes?: readonly string[];
  /** @default {} */
  readonly schedules?: Readonly<Record<string, JobScheduleProps>>;
}

/**
 * The project's own deployment: the BatchTransform construct with the two example models of
 * `containers/models` (`iris`, `sentiment`), so a fresh deployment can run the jobs in `examples/`.
 */
export class BatchTransformStack extends Stack {
  readonly batchTransform: BatchTransform;

  constructor(scope: Construct, id: string, props: BatchTransformStackProps = {}) {
    super(scope, id, props);
    this.batchTransform = new BatchTransform(this, 'BatchTransform', {
      models: {
        iris: { image: repositoryImage('containers/models/iris/Dockerfile') },
        sentiment: { image: repositoryImage('containers/models/sentiment/Dockerfile') },
      },
      ...(props.ec2InstanceTypes ? { ec2InstanceTypes: props.ec2InstanceTypes } : {}),
      ...(props.schedules ? { schedules: props.schedules } : {}),
    });
    const bt = this.batchTransform;
    new CfnOutput(this, 'StateMachineArn', {
      description: 'Start a job: an execution named after the TransformJobName, the request as input',
      value: bt.stateMachine.stateMachineArn,
    });
    if (bt.storage.dataBucket) {
      new CfnOutput(this, 'DataBucket', {
        description: 'Inputs go under input/, outputs are written under output/',
        value: bt.storage.dataBucket.bucketName,
      });
    }
    new CfnOutput(this, 'WorkRoot', {
      description: "Jobs' work locations (plan, progress, summary)",
      value: bt.workRoot,
    });
    new CfnOutput(this, 'ModelsRoot', {
      description: 'Models made with CreateModel (batch-transform api --stack)',
      value: bt.modelTasks.createdModelsRoot,
    });
    new CfnOutput(this, 'CreatedModelImages', {
      description: 'Image patterns a model made with CreateModel may use (JSON)',
      value: this.toJsonString(bt.modelTasks.createdModels.images),
    });
    new CfnOutput(this, 'Dashboard', { value: bt.monitoring.dashboard.dashboardName });
  }
}
