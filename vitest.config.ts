import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration suites start real servers (S3 on loopback, model processes): give them room on 2 cores.
    // Above every spawned CLI's own timeout (at most 120 s), so a stuck child is killed and reported, not orphaned.
    testTimeout: 150_000,
    hookTimeout: 60_000,
    pool: 'forks',
    allowOnly: false,
  },
});
