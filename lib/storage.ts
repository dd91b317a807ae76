import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledge, acknowledgeWildcards } from './nag';

/** A place jobs read from or write to: a bucket and a key prefix within it. */
export interface DataLocation {
  readonly bucket: s3.IBucket;
  /** Key prefix; `''` is the whole bucket. A prefix should end with `/` unless a raw key prefix is meant. @default '' */
  readonly prefix?: string;
  /**
   * The customer-managed KMS key the bucket's objects are encrypted with: readers get kms:Decrypt,
   * writers kms:GenerateDataKey and kms:Decrypt (a multipart upload needs both).
   * @default the bucket's own `encryptionKey` (set by `Bucket.fromBucketAttributes({ encryptionKey })`), else none
   */
  readonly encryptionKey?: kms.IKey;
}

export interface TransformStorageProps {
  /** Bucket behind the default input and output locations. @default a new bucket with the settings below */
  readonly dataBucket?: s3.IBucket;
  /** Where jobs may read input objects and manifests. @default the data bucket under `input/` */
  readonly inputLocations?: readonly DataLocation[];
  /** Where jobs may write their outputs. @default the data bucket under `output/` */
  readonly outputLocations?: readonly DataLocation[];
  /** Days after which a job's work location (plan, progress, summary, scratch) is deleted. */
  readonly workExpiryDays: number;
  /** Days after which S3 deletes the parts of a multipart upload nobody completed or aborted. */
  readonly abortIncompleteMultipartUploadAfterDays: number;
  /** KMS key for the buckets this construct creates. @default S3-managed keys (SSE-S3) */
  readonly encryptionKey?: kms.IKey;
  /** What happens to created buckets when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Keys jobs may name in `TransformOutput.KmsKeyId`: whoever writes outputs (the tasks, Assemble,
   * FinalizeFailure) may encrypt with them, and whoever reads shard outputs may decrypt. @default []
   */
  readonly outputKmsKeys?: readonly kms.IKey[];
}

/**
 * The S3 access a grantee gets on a set of locations, each an explicit list of actions:
 *   read          s3:GetObject (also HEAD)
 *   write         s3:PutObject, and s3:AbortMultipartUpload for the uploads the writer itself began
 *   delete        s3:DeleteObject
 *   list          s3:ListBucket, limited to the prefix
 *   abortUploads  find and abort anyone's abandoned uploads: s3:ListBucketMultipartUploads, s3:AbortMultipartUpload
 */
export type LocationAccess = 'read' | 'list' | 'write' | 'delete' | 'abortUploads';

const OBJECT_ACTIONS: Record<Exclude<LocationAccess, 'list'>, string[]> = {
  read: ['s3:GetObject'],
  write: ['s3:PutObject', 's3:AbortMultipartUpload'],
  delete: ['s3:DeleteObject'],
  abortUploads: ['s3:AbortMultipartUpload'],
};

/**
 * The buckets of a deployment. Every bucket this construct creates blocks public access, refuses
 * plain HTTP, is encrypted, writes access logs, and deletes abandoned multipart upload parts (an
 * aborted job must not leave storage that is billed forever). Jobs' work locations live in a bucket
 * of their own, `<work bucket>/jobs/<TransformJobName>/`, whose objects expire after a configurable
 * number of days.
 */
export class TransformStorage extends Construct {
  readonly workBucket: s3.Bucket;
  /** Created only when the deployment creates the data bucket itself. */
  readonly dataBucket?: s3.IBucket;
  readonly accessLogs: s3.Bucket;
  readonly inputs: readonly DataLocation[];
  readonly outputs: readonly DataLocation[];
  /** `<workBucket>/jobs/`: every job's work location is `<work>/<TransformJobName>/`. */
  readonly work: DataLocation;
  /** `<workBucket>/job-names/`: one record per job name ever used, kept while the stack exists. */
  readonly jobNames: DataLocation;
  readonly encryptionKey?: kms.IKey;
  readonly outputKmsKeys: readonly kms.IKey[];

  constructor(scope: Construct, id: string, props: TransformStorageProps) {
    super(scope, id);
    if (!Number.isInteger(props.workExpiryDays) || props.workExpiryDays < 1) {
      throw new Error(`workExpiryDays must be a whole number of days ≥ 1; got ${props.workExpiryDays}`);
    }
    if (
      !Number.isInteger(props.abortIncompleteMultipartUploadAfterDays) ||
      props.abortIncompleteMultipartUploadAfterDays < 1
    ) {
      throw new Error(
        `abortIncompleteMultipartUploadAfterDays must be a whole number of days ≥ 1; got ${props.abortIncompleteMultipartUploadAfterDays}`,
      );
    }
    this.encryptionKey = props.encryptionKey;
    this.outputKmsKeys = props.outputKmsKeys ?? [];
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const encryption = props.encryptionKey
      ? { encryption: s3.BucketEncryption.KMS, encryptionKey: props.encryptionKey, bucketKeyEnabled: true }
      : { encryption: s3.BucketEncryption.S3_MANAGED };
    const abortUploads: s3.LifecycleRule = {
      id: 'abort-incomplete-multipart-uploads',
      abortIncompleteMultipartUploadAfter: Duration.days(props.abortIncompleteMultipartUploadAfterDays),
    };

    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // S3 server access log delivery only writes to SSE-S3 buckets. Object ownership is left to CDK:
      // it depends on whether log delivery is granted by bucket policy or ACL (a feature flag).
      encryption: s3.BucketEncryption.S3_MANAGED,
      lifecycleRules: [abortUploads, { id: 'expire-logs', expiration: Duration.days(365) }],
      removalPolicy,
    });
    acknowledge(
      this.accessLogs,
      'AwsSolutions-S1',
      'This is the access log bucket itself; logging its own access would log the log deliveries.',
    );

    this.workBucket = new s3.Bucket(this, 'Work', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      ...encryption,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'work/',
      lifecycleRules: [
        abortUploads,
        // Work locations are scratch and records (plan, progress, summary): they expire on their own.
        // Only under `jobs/`: the job-name reservations (`job-names/`) must outlive them, or a name
        // could be reused once its job's records expired (SageMaker keeps names unique for good).
        { id: 'expire-work-locations', prefix: 'jobs/', expiration: Duration.days(props.workExpiryDays) },
      ],
      removalPolicy,
    });
    this.work = { bucket: this.workBucket, prefix: 'jobs/' };
    this.jobNames = { bucket: this.workBucket, prefix: 'job-names/' };

    const needsDataBucket = !props.inputLocations || !props.outputLocations;
    if (props.dataBucket) {
      this.dataBucket = props.dataBucket;
    } else if (needsDataBucket) {
      this.dataBucket = new s3.Bucket(this, 'Data', {
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        ...encryption,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        serverAccessLogsBucket: this.accessLogs,
        serverAccessLogsPrefix: 'data/',
        lifecycleRules: [abortUploads],
        removalPolicy,
      });
    }
    this.inputs = props.inputLocations ?? [{ bucket: this.dataBucket!, prefix: 'input/' }];
    this.outputs = props.outputLocations ?? [{ bucket: this.dataBucket!, prefix: 'output/' }];
    if (this.inputs.length === 0)
      throw new Error('inputLocations is empty: jobs would have nothing they may read');
    if (this.outputs.length === 0)
      throw new Error('outputLocations is empty: jobs would have nowhere to write');
  }

  /** `s3://<work bucket>/jobs/`, the DeploymentContext's workRoot. */
  get workRoot(): string {
    return locationUri(this.work);
  }

  /** `s3://<work bucket>/job-names/`, the DeploymentContext's jobNamesRoot. */
  get jobNamesRoot(): string {
    return locationUri(this.jobNames);
  }

  /**
   * Grants `access` on `locations` (object-level actions on `prefix*`, `s3:ListBucket` limited to the
   * prefix by condition), plus use of the deployment's KMS key when there is one.
   */
  grant(grantee: iam.IGrantable, locations: readonly DataLocation[], ...access: LocationAccess[]): void {
    for (const location of locations) {
      const prefix = location.prefix ?? '';
      const objectActions = [...new Set(access.flatMap((a) => (a === 'list' ? [] : OBJECT_ACTIONS[a])))];
      if (objectActions.length > 0) {
        const objects = location.bucket.arnForObjects(`${prefix}*`);
        grantee.grantPrincipal.addToPrincipalPolicy(
          new iam.PolicyStatement({ actions: objectActions, resources: [objects] }),
        );
        if (Construct.isConstruct(grantee.grantPrincipal)) {
          acknowledgeWildcards(grantee.grantPrincipal, [
            {
              resource: objects,
              reason: `Object-level S3 permissions (${objectActions.join(', ')}) on one configured location, \`${prefix}*\`: the keys a job touches are only known when it runs.`,
            },
          ]);
        }
      }
      if (access.includes('list')) {
        grantee.grantPrincipal.addToPrincipalPolicy(
          new iam.PolicyStatement({
            actions: ['s3:ListBucket'],
            resources: [location.bucket.bucketArn],
            ...(prefix ? { conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } } } : {}),
          }),
        );
      }
      if (access.includes('abortUploads')) {
        // Finding a job's abandoned uploads needs the bucket-level listing of multipart uploads.
        grantee.grantPrincipal.addToPrincipalPolicy(
          new iam.PolicyStatement({
            actions: ['s3:ListBucketMultipartUploads'],
            resources: [location.bucket.bucketArn],
          }),
        );
      }
    }
    // Keys only for reading and writing objects: listing, deleting and aborting uploads need none.
    const reads = access.includes('read');
    const writes = access.includes('write');
    if (!reads && !writes) return;
    const keys = new Set<kms.IKey>();
    for (const location of locations) {
      const key = location.encryptionKey ?? location.bucket.encryptionKey;
      if (key) keys.add(key);
      // A job's KmsKeyId encrypts its outputs, and its shard outputs (in the work location), which
      // only writers of outputs (the tasks, Assemble, FinalizeFailure) write and read back.
      if (this.outputs.includes(location)) for (const k of this.outputKmsKeys) keys.add(k);
    }
    if (this.encryptionKey) keys.add(this.encryptionKey);
    for (const key of keys) key.grant(grantee, 'kms:Decrypt', ...(writes ? ['kms:GenerateDataKey'] : []));
  }

  /**
   * The work bucket is the deployment's own: a stage may list all of it, which is also what lets a
   * HEAD of a missing key answer 404 rather than 403 (S3 checks s3:ListBucket without a prefix there).
   */
  grantWork(grantee: iam.IGrantable, ...access: LocationAccess[]): void {
    this.grant(grantee, [this.work], ...access.filter((a) => a !== 'list'));
    if (access.includes('list')) {
      grantee.grantPrincipal.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.workBucket.bucketArn] }),
      );
    }
  }
}

/** `s3://bucket/prefix` of a location (a token string when the bucket name is one). */
export function locationUri(location: DataLocation): string {
  return `s3://${location.bucket.bucketName}/${location.prefix ?? ''}`;
}
