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
    ignoreMode: IgnoreMode.DOCKER,
    // The Dockerfile itself must be staged beside the context CDK hands to `docker build`.
    exclude: [...ignored, `!${dockerfile}`, ...ALWAYS_EXCLUDED],
  });
}
