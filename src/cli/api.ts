import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { ModelRegistry } from '../api/model-registry';
import type { TransformJobs } from '../api/transform-jobs';
import { testClients } from './deployed';
import { CliError, EXIT } from './io';

interface ApiOptions {
  local?: boolean;
  stack?: string;
  stateMachineArn?: string;
  region?: string;
  profile?: string;
  host: string;
  port: number;
  modelCommand?: string;
  endpointUrl?: string;
  workDir?: string;
  modelsRoot?: string;
}

export function registerApi(program: Command, setExit: (code: number) => void): void {
  program
    .command('api')
    .description(
      "Serve SageMaker's API (CreateTransformJob, DescribeTransformJob, ListTransformJobs, StopTransformJob, CreateModel, DescribeModel, ListModels, DeleteModel) so boto3 and the AWS CLI work unchanged with --endpoint-url.",
    )
    .option('--local', 'run the jobs on this machine')
    .option('--stack <name>', 'run the jobs on the deployed stack of this name (its StateMachineArn output)')
    .option('--state-machine-arn <arn>', "run the jobs on this state machine (a deployed stack's)")
    .option(
      '--profile <profile>',
      'with a deployed stack: a profile of the AWS config files (default: AWS_PROFILE)',
    )
    .option(
      '--models-root <uri>',
      'with --state-machine-arn: where the stack keeps created models (its ModelsRoot output, s3://<work bucket>/models/); --stack reads it from the stack',
    )
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: any free port)', parsePort, 8080)
    .option(
      '--model-command <cmd>',
      "with --local: a shell command that serves (on $SAGEMAKER_BIND_TO_PORT) any model whose image cannot run here (a created model's image that the local Docker engine holds runs in Docker)",
    )
    .option(
      '--endpoint-url <url>',
      'with --local: S3-compatible endpoint for s3:// locations (sets AWS_ENDPOINT_URL_S3)',
    )
    .option(
      '--work-dir <uri>',
      "with --local: where the jobs' plans, progress and summaries go (default: a temporary folder)",
    )
    .option(
      '--region <region>',
      "with --local: the region ARNs name (default: AWS_REGION, else us-east-1); with a stack: the stack's region",
    )
    .addHelpText(
      'after',
      `
The server never asks for credentials: clients sign with whatever they have and the signature is
not checked, so it listens on 127.0.0.1 unless --host says otherwise. With --stack or
--state-machine-arn it calls AWS with your own credentials, as \`submit\` and \`describe\` do. It
serves until SIGINT or SIGTERM; with --local those stop the running jobs (they end Stopped) before
it exits. docs/API.md lists every operation and field.

Example:
  npx batch-transform api --local --port 8080 --model-command "python3 model.py"
  python3 -c "import boto3; print(boto3.client('sagemaker', endpoint_url='http://127.0.0.1:8080').list_transform_jobs())"`,
    )
    .action(async (opts: ApiOptions) => {
      const deployed = opts.stack !== undefined || opts.stateMachineArn !== undefined;
      if (Boolean(opts.local) === deployed)
        throw new CliError(
          '`api` needs one back end: --local, or --stack <name> / --state-machine-arn <arn>',
        );
      if (deployed && (opts.modelCommand || opts.endpointUrl || opts.workDir))
        throw new CliError('--model-command, --endpoint-url and --work-dir go with --local only');
      if (!deployed && opts.modelsRoot) throw new CliError('--models-root goes with a deployed stack only');
      // Loaded here, not at start: the server and the deployed back end's AWS SDK are needed by `api` only.
      const [{ DEFAULT_REGION, LOCAL_ACCOUNT }, { startApiServer }, { ModelRegistry }] = await Promise.all([
        import('../api/arns'),
        import('../api/server'),
        import('../api/model-registry'),
      ]);
      const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
      let jobs: TransformJobs;
      let models: ModelRegistry;
      const release: Array<() => unknown> = [];
      if (deployed) {
        const [{ Transformer }, { DeployedTransformJobs, deployedModelRegistry }] = await Promise.all([
          import('../client/transformer'),
          import('../api/deployed-transform-jobs'),
        ]);
        const transformer = new Transformer({
          ...(opts.stateMachineArn ? { stateMachineArn: opts.stateMachineArn } : {}),
          ...(opts.stack ? { stackName: opts.stack } : {}),
          ...(opts.region ? { region: opts.region } : {}),
          ...(opts.profile ? { profile: opts.profile } : {}),
          ...(await testClients()),
        });
        try {
          jobs = await DeployedTransformJobs.open(transformer);
        } catch (e) {
          transformer.close();
          throw new CliError((e as Error).message);
        }
        models = await deployedModelRegistry(transformer, jobs.identity, {
          ...(opts.modelsRoot ? { modelsRoot: opts.modelsRoot } : {}),
        });
      } else {
        const region =
          opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? DEFAULT_REGION;
        const identity = { partition: 'aws', region, account: LOCAL_ACCOUNT };
        const [{ Storages }, { LocalTransformJobs }] = await Promise.all([
          import('../storage/index'),
          import('../api/local-transform-jobs'),
        ]);
        if (opts.endpointUrl) process.env.AWS_ENDPOINT_URL_S3 = opts.endpointUrl;
        const storage = new Storages();
        const ownWorkDir = opts.workDir ? undefined : await mkdtemp(join(tmpdir(), 'batch-transform-api-'));
        const workRoot = opts.workDir ? workRootUri(opts.workDir) : `file://${ownWorkDir}/`;
        release.push(() => storage.destroy());
        if (ownWorkDir) release.push(() => rm(ownWorkDir, { recursive: true, force: true }));
        models = new ModelRegistry(identity);
        jobs = new LocalTransformJobs({
          identity,
          storage,
          models,
          ...(opts.modelCommand ? { modelCommand: opts.modelCommand } : {}),
          workRoot,
          sidecarEnv: opts.endpointUrl ? { AWS_ENDPOINT_URL_S3: opts.endpointUrl } : {},
          log,
        });
      }
      let server: Awaited<ReturnType<typeof startApiServer>>;
      try {
        server = await startApiServer({ jobs, models, host: opts.host, port: opts.port, log });
      } catch (e) {
        throw new CliError(`cannot listen on ${opts.host}:${opts.port}: ${(e as Error).message}`);
      }
      process.stdout.write(`batch-transform api listening on ${server.url} (${jobs.label})\n`);
      process.stdout.write(`  boto3: boto3.client('sagemaker', endpoint_url='${server.url}')\n`);
      process.stdout.write(`  AWS CLI: aws sagemaker list-transform-jobs --endpoint-url ${server.url}\n`);
      const signal = await new Promise<NodeJS.Signals>((done) => {
        process.once('SIGINT', () => done('SIGINT'));
        process.once('SIGTERM', () => done('SIGTERM'));
      });
      log(`${signal}: stopping running jobs, then exiting`);
      await server.close();
      for (const r of release) await r();
      log('stopped');
      setExit(EXIT.ok);
    });
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('a port is a whole number from 0 to 65535');
  return n;
}

/** The work root as a URI ending in `/`: a path or a relative file:// location becomes absolute. */
function workRootUri(uri: string): string {
  const dir = uri.endsWith('/') ? uri : `${uri}/`;
  if (dir.startsWith('file:///') || (/^[a-z0-9]+:\/\//.test(dir) && !dir.startsWith('file://'))) return dir;
  return `file://${resolve(dir.replace(/^file:\/\//, ''))}/`;
}
