import { Storages } from '../../src/storage/index';

let shared: Storages | undefined;

/**
 * The storage every stage Lambda uses: S3 only (the deployed stages refuse file:// locations), one
 * client per Lambda container, reused across invocations. Connection settings come from the
 * environment (src/storage/s3.ts `s3ClientConfigFromEnv`): `AWS_ENDPOINT_URL_S3` points the stages
 * at an S3-compatible server, which is how test/cdk/e2e.test.ts runs them against a local one.
 */
export function deployedStorage(): Storages {
  shared ??= new Storages({ file: false });
  return shared;
}
