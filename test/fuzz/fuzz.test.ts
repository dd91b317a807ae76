import fc from 'fast-check';
import { describe, it } from 'vitest';
import { PROPERTIES } from './properties';

/**
 * The data-plane properties of `npm run fuzz` at CI size: a few hundred random cases each. The long
 * run (100,000 cases and more) uses the same definitions; a failure prints the seed and the path to
 * replay it (`npm run fuzz -- --only <name> --seed <seed> --path <path>`).
 */
describe('data-plane fuzzing (CI size)', () => {
  it.each(PROPERTIES.map((p) => [p.name, p] as const))('%s', async (_name, p) => {
    await fc.assert(p.property(), { numRuns: 250 });
  });
});
