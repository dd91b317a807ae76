import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CfnTemplate } from '../cdk/definition';
import type { LocalEcs, TaskRecord } from '../cdk/local-ecs';
import type { Cfn } from '../cdk/synth';
import { type DockerEngine, dockerAvailable, startDockerEcs } from './ecs-runner';
import { IMAGES } from './images';

/**
 * The Docker engine's ECS semantics, one container setting per case, on small task definitions of
 * the shape CloudFormation holds (PascalCase, as synthesized). The stack's own task definitions run
 * in e2e.test.ts.
 */

const CLUSTER = 'arn:aws:ecs:us-east-1:123456789012:cluster/Cluster';
let runner: LocalEcs;
let engine: DockerEngine;
const definitions: Record<string, Cfn[]> = {};
const volumes: Record<string, Cfn[]> = {};

/** A shell command in the stand-in base image (Debian minbase: sh, coreutils, node). */
const sh = (script: string) => ({ Image: IMAGES.base, EntryPoint: ['sh', '-c'], Command: [script] });

function template(): CfnTemplate {
  const resources: Record<string, Cfn> = {
    Cluster: { Type: 'AWS::ECS::Cluster', Properties: {} },
    Providers: {
      Type: 'AWS::ECS::ClusterCapacityProviderAssociations',
      Properties: { Cluster: 'Cluster', CapacityProviders: ['FARGATE'] },
    },
    Subnet: { Type: 'AWS::EC2::Subnet', Properties: {} },
    Group: { Type: 'AWS::EC2::SecurityGroup', Properties: {} },
  };
  for (const [id, containers] of Object.entries(definitions)) {
    resources[id] = {
      Type: 'AWS::ECS::TaskDefinition',
      Properties: {
        Cpu: '1024',
        Memory: '2048',
        ContainerDefinitions: containers,
        Volumes: volumes[id] ?? [],
      },
    };
  }
  return { Resources: resources } as CfnTemplate;
}

/** Runs one task of a definition declared above; the record of the stopped task, and whether `.sync` failed. */
async function run(id: string): Promise<{ task: TaskRecord; failed: boolean }> {
  const before = runner.tasks.length;
  let failed = false;
  await runner
    .runTaskSync({
      Cluster: CLUSTER,
      TaskDefinition: `arn:aws:ecs:us-east-1:123456789012:task-definition/${id}:1`,
      CapacityProviderStrategy: [{ CapacityProvider: 'FARGATE' }],
      NetworkConfiguration: { AwsvpcConfiguration: { Subnets: ['Subnet'], SecurityGroups: ['Group'] } },
      StartedBy: id,
    })
    .catch(() => {
      failed = true;
    });
  return { task: runner.tasks[before]!, failed };
}

function define(id: string, containers: Cfn[], taskVolumes: Cfn[] = []): void {
  definitions[id] = containers;
  volumes[id] = taskVolumes;
}

define('Namespace', [
  {
    Name: 'server',
    Essential: false,
    LinuxParameters: { InitProcessEnabled: true },
    ...sh("exec node -e \"require('http').createServer((q,r)=>r.end('ok')).listen(8080)\""),
  },
  {
    Name: 'client',
    DependsOn: [{ ContainerName: 'server', Condition: 'START' }],
    ...sh(
      "sleep 1; node -e \"require('http').get('http://127.0.0.1:8080',r=>r.on('data',d=>console.log('got '+d)))\"",
    ),
  },
]);
define('ReadOnly', [
  {
    Name: 'main',
    ReadonlyRootFilesystem: true,
    User: '1000',
    ...sh('id -u; touch /probe 2>/dev/null && echo root-writable || echo root-read-only'),
  },
]);
define('Volumes', [
  {
    Name: 'writer',
    // The sidecar image has node and no shell.
    Image: IMAGES.sidecar,
    EntryPoint: ['node', '-e'],
    Command: [
      [
        "const { writeFileSync } = require('fs');",
        "writeFileSync('/opt/ml/model/ok', ''); console.log('model-writable');",
        "try { writeFileSync('/data/ok', ''); } catch { console.log('data-not-writable'); }",
      ].join(' '),
    ],
    Essential: false,
    ReadonlyRootFilesystem: true,
    MountPoints: [
      { SourceVolume: 'model', ContainerPath: '/opt/ml/model' },
      { SourceVolume: 'data', ContainerPath: '/data' },
      { SourceVolume: 'scratch', ContainerPath: '/tmp' },
    ],
  },
  {
    Name: 'reader',
    User: '4242',
    DependsOn: [{ ContainerName: 'writer', Condition: 'SUCCESS' }],
    MountPoints: [{ SourceVolume: 'model', ContainerPath: '/opt/ml/model', ReadOnly: true }],
    ...sh('ls /opt/ml/model && touch /tmp/x && echo tmp-ok'),
  },
], [{ Name: 'model' }, { Name: 'data' }, { Name: 'scratch' }]);
define('Healthy', [
  {
    Name: 'slow',
    Essential: false,
    LinuxParameters: { InitProcessEnabled: true },
    HealthCheck: {
      Command: ['CMD-SHELL', 'test -f /tmp/ready'],
      Interval: 1,
      Timeout: 2,
      Retries: 10,
      StartPeriod: 0,
    },
    ...sh('sleep 2; touch /tmp/ready; exec sleep 600'),
  },
  {
    Name: 'after',
    DependsOn: [{ ContainerName: 'slow', Condition: 'HEALTHY' }],
    ...sh('echo started-after-healthy'),
  },
]);
define('Stopping', [
  // Ignores SIGTERM: killed after its stop timeout once the essential container exits.
  {
    Name: 'stubborn',
    Essential: false,
    StopTimeout: 2,
    LinuxParameters: { InitProcessEnabled: true },
    ...sh("trap '' TERM; sleep 600 & wait"),
  },
  { Name: 'polite', Essential: false, ...sh("trap 'exit 0' TERM; sleep 600 & wait") },
  { Name: 'main', DependsOn: [{ ContainerName: 'stubborn', Condition: 'START' }], ...sh('sleep 1; exit 3') },
]);

beforeAll(async () => {
  if (!(await dockerAvailable()))
    throw new Error('no Docker engine answers: run `bash test/containers/setup.sh` (as root) first');
  ({ ecs: runner, engine } = await startDockerEcs({
    template: template(),
    pauseImage: IMAGES.base,
    platformEnvironment: {},
  }));
});

afterAll(async () => {
  await runner?.stop();
  await engine?.close();
});

describe('ECS tasks on Docker', () => {
  it('gives each task one network namespace: its containers meet on 127.0.0.1', async () => {
    const { task } = await run('Namespace');
    expect(task.logs.client, JSON.stringify(task.logs)).toContain('got ok');
  });

  it('runs as the definition’s user with a read-only root filesystem', async () => {
    const { task } = await run('ReadOnly');
    expect(task.logs.main).toMatch(/^1000$/m);
    expect(task.logs.main).toContain('root-read-only');
  });

  it('gives task volumes the owner of the image’s VOLUME directory, and root 0755 elsewhere', async () => {
    const { task, failed } = await run('Volumes');
    expect(failed, JSON.stringify(task.logs)).toBe(false);
    // The sidecar image's node user writes /opt/ml/model (its VOLUME, owned by node), not /data.
    expect(task.logs.writer).toContain('model-writable');
    expect(task.logs.writer).toContain('data-not-writable');
    // Another user reads what it wrote, after it succeeded; /tmp stays writable.
    expect(task.logs.reader).toContain('ok');
    expect(task.logs.reader).toContain('tmp-ok');
  });

  it('starts a container that depends on HEALTHY only once the health check passes', async () => {
    const { task } = await run('Healthy');
    expect(task.logs.after, JSON.stringify(task.logs)).toContain('started-after-healthy');
    expect(task.exitCodes.after).toBe(0);
  });

  it('stops the others when the essential container exits: SIGTERM, SIGKILL after stopTimeout', async () => {
    const started = Date.now();
    const { task, failed } = await run('Stopping');
    expect(failed).toBe(true);
    expect(task.stopCode).toBe('EssentialContainerExited');
    expect(task.exitCodes).toEqual({ stubborn: 137, polite: 0, main: 3 });
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
