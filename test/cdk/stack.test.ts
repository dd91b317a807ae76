import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_IMAGE } from '../../lib/images';
import { BatchTransformStack } from '../../lib/stack';
import { type Cfn, cdkJsonContext } from './synth';

/**
 * The project's own stack, synthesized as `npm run synth` does: Lambda bundles built with the local
 * esbuild, container images staged from the repository's Dockerfiles, cdk-nag on. One synthesis for
 * the file (bundling is the slow part of synthesis).
 */

let outdir: string;
let template: Cfn;
let assets: Cfn;
let synthMs: number;
let failure: unknown;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'cdk-stack-'));
  const started = Date.now();
  const app = new App({ outdir, context: cdkJsonContext() });
  const stack = new BatchTransformStack(app, 'BatchTransform', { ec2InstanceTypes: ['ml.g5.xlarge'] });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    app.synth();
  } catch (e) {
    failure = e;
  }
  synthMs = Date.now() - started;
  template = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.template.json`), 'utf8'));
  assets = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.assets.json`), 'utf8'));
});
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

describe('the project stack', () => {
  it('synthesizes offline with no unacknowledged cdk-nag finding', () => {
    expect(failure).toBeUndefined();
    const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8'));
    expect(report.pluginReports.flatMap((p: Cfn) => p.violations)).toEqual([]);
    // npm run synth adds the CLI's start-up to this; the budget for both is a minute.
    expect(synthMs).toBeLessThan(45_000);
  });

  it('bundles every stage Lambda into an ES module that loads and exports its handler', async () => {
    const all = Object.entries<Cfn>(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
    // The one function that is not a stage: CDK's handler that empties the VPC's default security group.
    expect(all.map(([id]) => id).filter((id) => !id.startsWith('BatchTransformLifecycleStages'))).toEqual([
      expect.stringMatching(/^CustomVpcRestrictDefaultSGCustomResourceProviderHandler/),
    ]);
    const functions = all.filter(([id]) => id.startsWith('BatchTransformLifecycleStages'));
    expect(
      functions.map(([id]) => id.replace(/^BatchTransformLifecycleStages|Function[A-F0-9]{8}$/g, '')).sort(),
    ).toEqual(['Assemble', 'Cleanup', 'Finalize', 'Plan', 'Validate']);
    for (const [, fn] of functions) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
      });
      const key = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
      const bundle = join(outdir, assets.files[key].source.path, 'index.mjs');
      const loaded = await import(pathToFileURL(bundle).href);
      expect(typeof loaded.handler).toBe('function');
      expect(existsSync(`${bundle}.map`)).toBe(true);
    }
  });

  it('stages the sidecar and example model images from the repository, with only what each build reads', () => {
    const images = Object.values<Cfn>(assets.dockerImages).map((i) => ({
      file: i.source.dockerFile,
      dir: join(outdir, i.source.directory),
      platform: i.source.platform,
      buildArgs: i.source.dockerBuildArgs,
    }));
    expect(images.map((i) => i.file).sort()).toEqual([
      'containers/models/iris/Dockerfile',
      'containers/models/sentiment/Dockerfile',
      'containers/sidecar/Dockerfile',
    ]);
    for (const image of images) {
      expect(image.platform).toBe('linux/amd64');
      expect(existsSync(join(image.dir, image.file)), image.file).toBe(true);
      expect(existsSync(join(image.dir, 'node_modules')), image.file).toBe(false);
      expect(existsSync(join(image.dir, 'cdk.out')), image.file).toBe(false);
      // A maintained Node.js LTS pinned by digest, the same in the Dockerfile and the asset; no
      // `# syntax=` line, which would make BuildKit pull a frontend image from a registry.
      expect(image.buildArgs, image.file).toEqual({ NODE_IMAGE });
      const dockerfile = readFileSync(join(image.dir, image.file), 'utf8');
      expect(dockerfile, image.file).toContain(`ARG NODE_IMAGE=${NODE_IMAGE}\n`);
      expect(dockerfile, image.file).not.toMatch(/^# *syntax=/m);
    }
    expect(NODE_IMAGE).toMatch(/^node:(22|24)-[a-z]+-slim@sha256:[0-9a-f]{64}$/);
  });

  it('tells the deployer where to start jobs and find their data, and `api --stack` where created models go', () => {
    expect(Object.keys(template.Outputs).sort()).toEqual([
      'CreatedModelImages',
      'Dashboard',
      'DataBucket',
      'ModelsRoot',
      'StateMachineArn',
      'WorkRoot',
    ]);
    // The work bucket, outside the expiring jobs/ prefix.
    expect(JSON.stringify(template.Outputs.ModelsRoot.Value)).toMatch(
      /"s3:\/\/",\{"Ref":"[A-Za-z0-9]*Work[A-Za-z0-9]*"\},"\/models\/"/,
    );
  });
});
