/**
 * The typed client of a deployed batch-transform stack, for programs and for the CLI's `submit`,
 * `describe`, `wait`, `stop` and `list`:
 *
 *   const t = new Transformer({ region: 'eu-west-1' });
 *   const job = await t.transform(request);
 *   const description = await job.wait();
 */
export {
  type AwsClients,
  type AwsConnection,
  BatchTransformError,
  type BatchTransformErrorKind,
  type CommandSender,
} from './aws';
export {
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_STACK_NAME,
  LIST_MAX_RESULTS,
  STATE_MACHINE_ARN_ENV,
} from './defaults';
export { type Deployment, executionArnOf, STACK_OUTPUTS } from './deployment';
export type { JobDescription, JobProgress } from './describe';
export type { ListJobsFilters, ListJobsResult, TransformJobSummary } from './list';
export { isTerminal, jobStatusOf, TRANSFORM_JOB_STATUSES, type TransformJobStatus } from './status';
export {
  TransformJob,
  Transformer,
  type TransformerOptions,
  type WaitOptions,
} from './transformer';
