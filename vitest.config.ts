import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Docker-based suites run with `npm run test:containers` (their own config), never in `npm test`.
    exclude: ['**/node_modules/**', 'test/containers/**'],
    // Integration suites start real servers (S3 on loopback, model processes): give them room on 2 cores.
    // Above every spawned CLI's own timeout (at most 120 s), so a stuck child is killed and reported, not orphaned.
    testTimeout: 150_000,
    hookTimeout: 60_000,
    pool: 'forks',
    allowOnly: false,
  },
});
