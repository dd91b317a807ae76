/** The images test/containers/setup.sh builds (keep its tags the same). */
export const IMAGES = {
  /** The local stand-in of the Dockerfiles' base image: also each task's network-namespace holder. */
  base: 'node:24-bookworm-slim',
  sidecar: 'batch-transform-sidecar:test',
  iris: 'iris-model:test',
  sentiment: 'sentiment-model:test',
  /** test/fixtures/models/test-model.ts: faults by environment, exits 143 on SIGTERM. */
  testModel: 'batch-transform-test-model:test',
} as const;
