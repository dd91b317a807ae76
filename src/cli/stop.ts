import type { Command } from 'commander';
import { addDeploymentOptions, DEPLOYMENT_HELP, type DeploymentOptions, withTransformer } from './deployed';
import { EXIT, printJson } from './io';

export function registerStop(program: Command, setExit: (code: number) => void): void {
  addDeploymentOptions(
    program
      .command('stop')
      .description(
        "Stop a transform job on the deployed stack (StopExecution); the stack's cleanup then stops its tasks, aborts its uploads and writes its summary.",
      )
      .argument('<name>', 'the TransformJobName'),
  )
    .option('--json', 'print the description after stopping as JSON')
    .addHelpText(
      'after',
      `\nExit codes: 0 stopped, 2 no such job, the job already ended, or no deployment found.\n${DEPLOYMENT_HELP}\n\nExample:\n  batch-transform stop iris-2030-01-31`,
    )
    .action(async (name: string, opts: DeploymentOptions & { json?: boolean }) => {
      const d = await withTransformer(opts, (t) => t.stop(name));
      if (opts.json) printJson(d);
      else
        process.stdout.write(
          `Transform job ${d.TransformJobName}: ${d.TransformJobStatus}\n  its tasks are stopped and its scratch removed in the background; outputs already written stay\n`,
        );
      setExit(EXIT.ok);
    });
}
