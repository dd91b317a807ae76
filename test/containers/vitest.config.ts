import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * `npm run test:containers`: the suites that build on a Docker engine (test/containers/setup.sh
 * installs and starts one, and builds the images). One file at a time: they share the engine and
 * the machine's two cores with the containers they start.
 */
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/containers/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 180_000,
    pool: 'forks',
    fileParallelism: false,
    allowOnly: false,
  },
});
