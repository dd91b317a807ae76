/**
 * The state names of the job lifecycle. The construct builds the state machine with them, the cleanup
 * handler finds the Validate step's output in an execution's history by its name, and the local
 * executions of the definition map handlers to them.
 */
export const STATE_NAMES = {
  validate: 'Validate',
  plan: 'Plan',
  runPartitions: 'RunPartitions',
  partition: 'Partition',
  runPartition: 'RunPartition',
  readPartitionTask: 'ReadPartitionTask',
  isPartitionTask: 'IsPartitionTask',
  readSidecarResult: 'ReadSidecarResult',
  isPartitionDone: 'IsPartitionDone',
  partitionDone: 'PartitionDone',
  partitionFailed: 'PartitionFailed',
  assemble: 'Assemble',
  finalize: 'Finalize',
  cleanup: 'Cleanup',
  isCompleted: 'IsCompleted',
  succeeded: 'Succeeded',
  transformJobFailed: 'TransformJobFailed',
  finalizeFailure: 'FinalizeFailure',
  reasonFromCause: 'ReasonFromCause',
  cleanupAfterFailure: 'CleanupAfterFailure',
  jobFailed: 'JobFailed',
} as const;
