import { planStage } from '../../src/lifecycle/plan';
import type { PlanRef } from '../../src/contract/state';
import { type LifecycleState, requireJob } from '../../src/contract/state';
import { deployedStorage } from '../shared/storage';

/** The Plan step: lists the input and writes the plan (src/lifecycle/plan.ts); returns the small PlanRef. */
export async function handler(state: LifecycleState): Promise<PlanRef> {
  return planStage(requireJob(state, 'Plan'), deployedStorage(), { outputRoots: outputRoots() });
}

/**
 * The deployment's output locations, `OUTPUT_ROOTS` (a JSON array the construct writes): kept out
 * of the Validate function's DEPLOYMENT document, whose 4 KB Lambda environment has no room left.
 */
function outputRoots(): string[] {
  const raw = process.env.OUTPUT_ROOTS;
  if (!raw) throw new Error("the Plan function has no OUTPUT_ROOTS (the deployment's output locations)");
  return JSON.parse(raw) as string[];
}
