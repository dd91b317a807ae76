import { assembleStage } from '../../src/lifecycle/assemble';
import { type LifecycleState, requireJob, requirePlan } from '../../src/contract/state';
import { deployedStorage } from '../shared/storage';

/** The Assemble step: joins shard outputs into each sharded object's `.out` (src/lifecycle/assemble.ts). */
export async function handler(state: LifecycleState): Promise<{ assembledObjects: number }> {
  return assembleStage(requireJob(state, 'Assemble'), requirePlan(state, 'Assemble'), deployedStorage());
}
