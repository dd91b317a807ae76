import type { TransformJobDescription } from '../contract/description';
import type { JobRef, PlanRef, StateFailure } from '../contract/state';
import type { Storage } from '../storage/storage';
import { assembleStage } from './assemble';
import { removeStoppedJobOutputs } from './cleanup';
import { finalizeStage } from './finalize';

/**
 * The end of every job that got past Plan, written once for the Finalize handler (failure path) and
 * the local runner (both paths): assemble what finished, then finalize. Objects whose shards all
 * finished before a failure still get their `.out`, as whole objects do; assemble skips the rest, and
 * must run before cleanup removes the shard outputs. An assemble error fails the job; after an
 * earlier failure it is added to the reason instead. A stopped job is not assembled, and the outputs
 * it completed are removed (unless Extensions.KeepOutputsOnStop).
 */
export async function assembleThenFinalize(
  ref: JobRef,
  plan: PlanRef | undefined,
  storage: Storage,
  opts: {
    readonly failure?: StateFailure;
    readonly stopped?: boolean;
    /** Called as each step starts (the local runner's progress display). */
    readonly onStep?: (step: 'assembling' | 'finalizing') => void;
  } = {},
): Promise<TransformJobDescription> {
  let failure = opts.failure;
  const notes: string[] = [];
  if (plan && !opts.stopped) {
    opts.onStep?.('assembling');
    try {
      await assembleStage(ref, plan, storage);
    } catch (e) {
      if (failure) notes.push((e as Error).message);
      else failure = { Error: (e as Error).name, Cause: (e as Error).message };
    }
  }
  // A stopped job stores no output (SageMaker's StopTransformJob), unless the job keeps it.
  if (opts.stopped) {
    try {
      const removed = await removeStoppedJobOutputs(ref, storage);
      if (removed.kept) notes.push(removed.kept);
    } catch (e) {
      notes.push(`the stopped job's outputs could not all be removed: ${(e as Error).message}`);
    }
  }
  opts.onStep?.('finalizing');
  return finalizeStage(ref, storage, {
    ...(failure ? { failure } : {}),
    ...(notes.length > 0 ? { notes } : {}),
    ...(opts.stopped ? { stopped: true } : {}),
  });
}
