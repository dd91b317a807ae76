import type { Command } from 'commander';
import {
  addDeploymentOptions,
  DEPLOYMENT_HELP,
  type DeploymentOptions,
  formatDescription,
  withTransformer,
} from './deployed';
import { EXIT, printJson } from './io';

export function registerDescribe(program: Command, setExit: (code: number) => void): void {
  addDeploymentOptions(
    program
      .command('describe')
      .description(
        'Describe a transform job on the deployed stack: status, failure reason, times and progress counters (live while it runs).',
      )
      .argument('<name>', 'the TransformJobName'),
  )
    .option('--json', 'print the DescribeTransformJob-shaped description (with Progress) as JSON')
    .addHelpText(
      'after',
      `\nExit codes: 0 described (whatever the job's status), 2 no such job or no deployment found.\n${DEPLOYMENT_HELP}\n\nExample:\n  batch-transform describe iris-2030-01-31 --json`,
    )
    .action(async (name: string, opts: DeploymentOptions & { json?: boolean }) => {
      const d = await withTransformer(opts, (t) => t.describe(name));
      if (opts.json) printJson(d);
      else process.stdout.write(`${formatDescription(d)}\n`);
      setExit(EXIT.ok);
    });
}
