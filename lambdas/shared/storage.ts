import { Storages } from '../../src/storage/index';

let shared: Storages | undefined;

/**
 * The storage every stage Lambda uses: S3 only (the deployed stages refuse file:// locations), one
 * client per Lambda container, reused across invocations.
 */
export function deployedStorage(): Storages {
  shared ??= new Storages({ file: false });
  return shared;
}
