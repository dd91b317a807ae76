import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kind } from './scenarios';
import { FaultSession } from './session';

/**
 * A CI-sized slice of `npm run faults`: the harness itself (loopback S3 with fault rules, the real
 * CLI, sidecars and model processes, the per-run invariants) on three faults, locally: two on small
 * objects, and a sidecar killed inside the multipart upload of an 18 MiB one. The full harness
 * (every kind, the state machine too) is `npm run faults`.
 */
describe('fault injection (CI slice of npm run faults)', () => {
  let session: FaultSession;
  beforeAll(async () => {
    session = await FaultSession.start(20_240_601, { bigMiB: 0, modes: ['local'] });
    await session.baseline('local', 'whole');
  }, 60_000);
  afterAll(async () => {
    await session?.stop();
  });

  const cases: Array<[Kind, string]> = [
    ['s3Transient', 'S3 500/503 answers that retries get past: Completed, byte-identical outputs'],
    [
      'model500Persistent',
      'a model refusing one record: Failed naming that object, the other outputs identical',
    ],
  ];
  it.each(cases)(
    '%s: %s',
    async (kind) => {
      const report = await session.run(kind, 7, 'local', 'whole');
      expect(report.problems).toEqual([]);
      expect(report.faults).toBeGreaterThan(0);
      expect([report.lost, report.duplicated, report.uploadsLeft, report.scratchLeft]).toEqual([0, 0, 0, 0]);
    },
    60_000,
  );
});

describe('fault injection: a sidecar killed in the middle of a multipart upload (CI slice)', () => {
  let session: FaultSession;
  beforeAll(async () => {
    // An object big enough for a multipart upload (8 MiB parts): the kill lands inside one.
    session = await FaultSession.start(20_240_602, { bigMiB: 18, modes: ['local'] });
    await session.baseline('local', 'whole');
  }, 90_000);
  afterAll(async () => {
    await session?.stop();
  });

  it('sidecarKill: the job fails naming the object, and no upload, no partial output and no scratch is left', async () => {
    const report = await session.run('sidecarKill', 7, 'local', 'whole');
    expect(report.problems).toEqual([]);
    expect(report.faults).toBe(1);
    expect([report.lost, report.duplicated, report.uploadsLeft, report.scratchLeft]).toEqual([0, 0, 0, 0]);
  }, 90_000);
});
