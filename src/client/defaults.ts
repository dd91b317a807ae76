/**
 * The client's defaults and limits that the CLI's help shows. A module of their own that loads no
 * AWS SDK: every CLI command reads them at start, and only the verbs on a deployed stack need the SDK.
 */

/** The stack name `bin/app.ts` deploys when no `-c stackName=…` is given. */
export const DEFAULT_STACK_NAME = 'BatchTransform';

/** Names the state machine directly, skipping the stack lookup. */
export const STATE_MACHINE_ARN_ENV = 'BATCH_TRANSFORM_STATE_MACHINE_ARN';

/** How often `wait()` asks for the job's description. */
export const DEFAULT_POLL_INTERVAL_MS = 10_000;

/** ListTransformJobs' MaxResults range and default. */
export const LIST_MAX_RESULTS = { min: 1, max: 100, default: 10 } as const;
