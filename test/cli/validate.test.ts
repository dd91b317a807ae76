import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli';

const seed = 'test/job/seed-request.json';

describe('batch-transform validate', () => {
  it('prints the normalized job and exits 0 for a valid request', async () => {
    const r = await runCli(['validate', seed]);
    expect(r.code).toBe(0);
    const job = JSON.parse(r.stdout);
    expect(job.TransformJobName).toBe('reviews-batch-2025-09-11');
    expect(job.DataProcessing).toEqual({ InputFilter: '$', OutputFilter: '$', JoinSource: 'None' });
    expect(job.Capacity.kind).toBe('fargate');
  });

  it('names each accepted-and-ignored field in a warning on standard error, and in the job it prints', async () => {
    const request = JSON.parse(await readFile(seed, 'utf8'));
    request.ExperimentConfig = { ExperimentName: 'e' };
    // DataCaptureConfig is honoured (capture manifests), so no warning names it.
    request.DataCaptureConfig = { DestinationS3Uri: 's3://cap/' };
    const r = await runCli(['validate', '-'], { stdin: JSON.stringify(request) });
    expect(r.code).toBe(0);
    const warnings = r.stderr.trim().split('\n');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^warning: ExperimentConfig: accepted and ignored: /);
    expect(JSON.parse(r.stdout).IgnoredFields.map((f: { path: string }) => f.path)).toEqual([
      'ExperimentConfig',
    ]);
    // A request with none gets no warning.
    expect((await runCli(['validate', seed])).stderr).toBe('');
  });

  it('prints every problem with its path and exits 2 for an invalid request', async () => {
    const r = await runCli(['validate', '-'], {
      stdin: JSON.stringify({ TransformJobName: 'x_y', ModelName: 'm' }),
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('Transform job "x_y" has 4 problems:');
    for (const path of ['TransformJobName', 'TransformInput', 'TransformOutput', 'TransformResources']) {
      expect(r.stderr).toMatch(new RegExp(`^  - ${path}: `, 'm'));
    }
  });

  it('prints problems as a JSON array of {path, message} with --json', async () => {
    const r = await runCli(['validate', '-', '--json'], {
      stdin: JSON.stringify({ TransformJobName: 'ok', ModelName: 'a.b' }),
    });
    expect(r.code).toBe(2);
    const problems = JSON.parse(r.stdout) as Array<{ path: string; message: string }>;
    expect(problems.map((p) => p.path)).toEqual([
      'ModelName',
      'TransformInput',
      'TransformOutput',
      'TransformResources',
    ]);
    for (const p of problems) expect(Object.keys(p).sort()).toEqual(['message', 'path']);
  });

  it('says clearly that a file is not JSON, without a stack trace', async () => {
    const r = await runCli(['validate', '-'], { stdin: 'TransformJobName: x' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^batch-transform: standard input is not valid JSON: /);
    expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('says clearly that a file does not exist', async () => {
    const r = await runCli(['validate', 'no-such-file.json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('batch-transform: cannot read no-such-file.json: no such file\n');
  });

  it('checks the instance type against the deployment with --enabled-instance-types', async () => {
    const r = await runCli(['validate', '-', '--json', '--enabled-instance-types', 'ml.g4dn.xlarge'], {
      stdin: (await import('node:fs')).readFileSync(seed, 'utf8').replace('ml.m5.xlarge', 'ml.g5.xlarge'),
    });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual([
      {
        path: 'TransformResources.InstanceType',
        message: expect.stringContaining('ml.g4dn.xlarge (EC2, enabled in this deployment)'),
      },
    ]);
  });

  it.each([['--help'], ['validate', '--help'], ['run', '--help']])(
    'answers %s with usage and exit 0',
    async (...args) => {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: batch-transform/);
    },
  );

  it("prints the package's version with --version", async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(r.stdout.trim()).toBe(pkg.version);
  });
});

describe('batch-transform schema', () => {
  it("prints the request as JSON Schema whose required fields are SageMaker's", async () => {
    const r = await runCli(['schema']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout);
    expect(schema.$schema).toMatch(/2020-12/);
    expect(schema.required).toEqual([
      'TransformJobName',
      'ModelName',
      'TransformInput',
      'TransformOutput',
      'TransformResources',
    ]);
    expect(schema.properties.Extensions.properties.CsvHeader.enum).toEqual(['None', 'Skip', 'Repeat']);
  });
});
