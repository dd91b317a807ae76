/**
 * The data-plane core: how an object's bytes become model requests and how responses become output
 * bytes. Plain TypeScript, no AWS: the sidecar, the local runner and the benchmarks share it.
 *
 *   object bytes ─► readMiniBatches (gunzip ─► split ─► CSV header ─► InputFilter ─► pack)
 *                ─► model ─► createOutputProcessor (split response ─► join ─► OutputFilter ─► assemble)
 *
 * docs/DATA-PLANE.md explains the choices (slice ends, Line framing, assembly, CSV headers).
 */
export {
  type BatchLayout,
  type Invocation,
  MiniBatch,
  type PackOptions,
  packMiniBatches,
  StreamedMiniBatch,
} from './batch';
export { crc32c, maskCrc } from './crc32c';
export { DataError } from './errors';
export { gunzip } from './gzip';
export {
  packsSourceChunks,
  readHeaderLine,
  readMiniBatches,
  readMiniBatchGroups,
  type ShardRead,
} from './input';
export { JsonTextSelector, type ParsedPath, parseJsonPath } from '../jsonpath/jsonpath';
export {
  type DataPlaneOptions,
  dataPlaneOptions,
  MIB,
  streamsWholeObject,
  unsupportedOptions,
} from './options';
export { createOutputProcessor, type OutputProcessor } from './output';
export { DataRecord, type ShardWindow, type SplitOptions } from './record';
export { encodeRecordIO, RECORDIO_MAGIC } from './recordio';
export { shardable, shardReadStart } from './shard';
export { splitRecords } from './split';
export { encodeTFRecord } from './tfrecord';
