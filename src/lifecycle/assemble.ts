import { errorsObjectUri, outputObjectUri, shardErrorsUri, shardOutputUri } from '../contract/layout';
import type { Storage } from '../storage/storage';
import { readStoredJob } from '../storage/json';
import { objectOutcomes, readReports } from './reports';
import type { JobRef, PlanRef } from '../contract/state';

/** Assembling one object's shards failed: names the object, so the job's FailureReason does. */
export class AssembleError extends Error {
  override readonly name = 'AssembleError';
}

/**
 * The assemble stage: every sharded object whose shards all succeeded gets its final `.out`, the
 * shard outputs concatenated in shard order (server-side part copies where the store allows, a
 * streamed copy otherwise). Isolated record errors are gathered the same way. Running it twice
 * writes the same bytes.
 */
export async function assembleStage(
  ref: JobRef,
  _plan: PlanRef,
  storage: Storage,
): Promise<{ assembledObjects: number }> {
  const [{ job }, reports] = await Promise.all([
    readStoredJob(storage, ref.jobUri),
    readReports(storage, ref.workUri),
  ]);
  const plan = reports.plan;
  if (!plan)
    throw new Error(`Transform job "${ref.jobName}": no plan at ${ref.workUri}plan.json to assemble from`);
  const outcomes = objectOutcomes(reports);
  const opts = job.TransformOutput.KmsKeyId ? { kmsKeyId: job.TransformOutput.KmsKeyId } : {};
  let assembled = 0;
  for (const outcome of outcomes) {
    const object = plan.objects[outcome.object]!;
    if (object.shardCount < 2 || outcome.status !== 'Completed') continue;
    const shards = Array.from({ length: object.shardCount }, (_, s) => s);
    const target = outputObjectUri(plan.outputUri, object.relativeKey);
    try {
      await storage.concat(
        shards.map((s) => shardOutputUri(ref.workUri, object.relativeKey, s)),
        target,
        opts,
      );
      if (outcome.failedRecords > 0) {
        const errorShards: string[] = [];
        for (const s of shards) {
          const uri = shardErrorsUri(ref.workUri, object.relativeKey, s);
          if (await storage.head(uri)) errorShards.push(uri);
        }
        await storage.concat(errorShards, errorsObjectUri(plan.outputUri, object.relativeKey), opts);
      }
    } catch (e) {
      const cause = e as Error;
      throw new AssembleError(
        `assembling ${object.uri} (${object.shardCount} shards into ${target}) failed: ${cause.name && cause.name !== 'Error' ? `${cause.name}: ` : ''}${cause.message}`,
        { cause },
      );
    }
    assembled++;
  }
  return { assembledObjects: assembled };
}
