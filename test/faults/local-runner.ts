/**
 * The local runner as a place to run jobs: `batch-transform run --local` as a child process (the
 * CLI, one real sidecar process and one test-model process per worker), `--endpoint-url` at the
 * loopback S3 server's front. The state machine is the other place (state-machine.ts).
 */
import type { TransformJobDescription } from '../../src/contract/description';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, TEST_MODEL } from '../support/cli';
import type { S3Harness } from '../support/s3-server';
import type { Deployment, Execution } from './harness';

/** s3rver's built-in account: not a secret, the harness accepts only it. */
export const S3RVER_KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
export const LOCAL_BUCKET = 'data';

export function localDeployment(s3: S3Harness): Deployment {
  return {
    mode: 'local',
    dataBucket: LOCAL_BUCKET,
    workBucket: LOCAL_BUCKET,
    workPrefix: (job) => `work/${job}/`,
    modelName: 'test-model',
    async execute(request, jobName, env): Promise<Execution> {
      const file = join(tmpdir(), `faults-${jobName}.json`);
      await writeFile(file, JSON.stringify(request));
      try {
        const cli = await runCli(
          [
            'run',
            file,
            '--local',
            '--model-command',
            TEST_MODEL,
            '--endpoint-url',
            s3.endpoint,
            '--work-dir',
            `s3://${LOCAL_BUCKET}/work/`,
            '--json',
          ],
          // The CLI passes its environment on to the sidecars and the model processes.
          { env: { ...S3RVER_KEYS, AWS_REGION: 'us-east-1', ...env }, timeoutMs: 300_000 },
        );
        let description: TransformJobDescription | undefined;
        try {
          description = JSON.parse(cli.stdout.trim().split('\n').pop() ?? '') as TransformJobDescription;
        } catch {
          description = undefined;
        }
        return {
          ...(description ? { description } : {}),
          exitCode: cli.code,
          diagnostics: `exit ${cli.code}; stderr: ${cli.stderr.trim().split('\n').slice(-40).join(' | ')}`,
        };
      } finally {
        await rm(file, { force: true });
      }
    },
  };
}
