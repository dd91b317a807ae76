/**
 * SageMaker's ARN forms (botocore's patterns for TransformJobArn and ModelArn, docs/API.md):
 * `arn:aws:sagemaker:<region>:<account>:transform-job/<name>` and `…:model/<name>`. The account must
 * be 12 digits for the pattern to hold; a local server has none, so it uses twelve zeros.
 */

/** Where the resources of this server live, as their ARNs say. */
export interface ApiIdentity {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
}

/** The account a local server puts in its ARNs: SageMaker's pattern wants 12 digits. */
export const LOCAL_ACCOUNT = '000000000000';
export const DEFAULT_REGION = 'us-east-1';

export function transformJobArn(id: ApiIdentity, name: string): string {
  return `arn:${id.partition}:sagemaker:${id.region}:${id.account}:transform-job/${name}`;
}

export function modelArn(id: ApiIdentity, name: string): string {
  return `arn:${id.partition}:sagemaker:${id.region}:${id.account}:model/${name}`;
}

/** The identity of a deployed state machine: its ARN's partition, region and account. */
export function identityOfArn(arn: string): ApiIdentity | undefined {
  const m = /^arn:([^:]+):[^:]*:([^:]*):(\d{12}):/.exec(arn);
  return m ? { partition: m[1]!, region: m[2]!, account: m[3]! } : undefined;
}
