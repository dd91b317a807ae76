import { planStage } from '../../src/lifecycle/plan';
import type { PlanRef } from '../../src/contract/state';
import { type LifecycleState, requireJob } from '../../src/contract/state';
import { deployedStorage } from '../shared/storage';

/** The Plan step: lists the input and writes the plan (src/lifecycle/plan.ts); returns the small PlanRef. */
export async function handler(state: LifecycleState): Promise<PlanRef> {
  return planStage(requireJob(state, 'Plan'), deployedStorage());
}
