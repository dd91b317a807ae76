import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IgnoreMode } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { REPO_ROOT } from './paths';

/** Never part of an image's build context, whatever a Dockerfile's ignore file says. */
const ALWAYS_EXCLUDED = [
  '**/node_modules',
  'cdk.out',
  '.git',
  'coverage',
  'dist',
  '.bench-data',
  '.local-runs',
];

/**
 * The base image of every Dockerfile of this repository (their `ARG NODE_IMAGE` default): Node.js 24
 * LTS, pinned by digest. Passed to every image asset so that a deployment builds on exactly this.
 */
export const NODE_IMAGE =
  'node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d';

/**
 * An image built from a Dockerfile of this repository with the repository root as its context (the
 * images import the shared code under src/). The Dockerfile's own `<Dockerfile>.dockerignore` (the
 * BuildKit convention the repository uses) also limits what CDK stages into cdk.out, so synthesis
 * copies only what the build reads. Staged at synth; built by `cdk deploy`, which needs Docker.
 */
export function repositoryImage(dockerfile: string): ecs.ContainerImage {
  const ignoreFile = join(REPO_ROOT, `${dockerfile}.dockerignore`);
  const ignored = existsSync(ignoreFile)
    ? readFileSync(ignoreFile, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
    : [];
  return ecs.ContainerImage.fromAsset(REPO_ROOT, {
    file: dockerfile,
    // Tasks run x86_64: GPU instance types are, and user model images mostly are.
    platform: Platform.LINUX_AMD64,
    buildArgs: { NODE_IMAGE },
    ignoreMode: IgnoreMode.DOCKER,
    // The Dockerfile itself must be staged beside the context CDK hands to `docker build`.
    exclude: [...ignored, `!${dockerfile}`, ...ALWAYS_EXCLUDED],
  });
}
