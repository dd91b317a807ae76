import type { Command } from 'commander';
import type { TransformJobRequest } from '../job/schema';
import { JobValidationError } from '../job/problems';
import { DEFAULT_POLL_INTERVAL_MS } from '../client/defaults';
import {
  addDeploymentOptions,
  DEPLOYMENT_HELP,
  type DeploymentOptions,
  parseSeconds,
  withTransformer,
} from './deployed';
import { EXIT, printJson, readRequestReportingJson } from './io';
import { waitAndReport } from './wait';

interface SubmitCliOptions extends DeploymentOptions {
  wait?: boolean;
  json?: boolean;
  pollInterval?: number;
}

export function registerSubmit(program: Command, setExit: (code: number) => void): void {
  addDeploymentOptions(
    program
      .command('submit')
      .description(
        'Start a transform job on the deployed stack: checks the request here, then starts an execution named after its TransformJobName.',
      )
      .argument('<job>', 'CreateTransformJob request JSON file, or - for standard input'),
  )
    .option('--wait', 'wait until the job ends (a progress bar on a terminal) and print its description')
    .option(
      '--json',
      'print JSON: the started job, or with --wait the final description; problems as [{path, message}]',
    )
    .option(
      '--poll-interval <seconds>',
      'with --wait: seconds between polls',
      parseSeconds,
      DEFAULT_POLL_INTERVAL_MS / 1000,
    )
    .addHelpText(
      'after',
      `\nExit codes: 0 started (with --wait: Completed), 1 with --wait: Failed or Stopped,\n2 invalid request, a job of that name exists, or no deployment found.\n${DEPLOYMENT_HELP}\n\nExample:\n  batch-transform submit examples/iris/job.json --wait`,
    )
    .action(async (file: string, opts: SubmitCliOptions) => {
      const request = (await readRequestReportingJson(file, opts.json)) as TransformJobRequest;
      await withTransformer(opts, async (t) => {
        let job: Awaited<ReturnType<typeof t.transform>>;
        try {
          job = await t.transform(request);
        } catch (e) {
          if (!(e instanceof JobValidationError)) throw e;
          // The same report as `validate`: every problem, each with its field path.
          if (opts.json) printJson(e.problems);
          else process.stderr.write(`${e.message}\n`);
          setExit(EXIT.invalid);
          return;
        }
        const started = `Started transform job ${job.name}\n  execution: ${job.executionArn}\n`;
        if (opts.wait) {
          if (!opts.json) process.stderr.write(started);
          setExit(await waitAndReport(job, opts));
          return;
        }
        if (opts.json) printJson({ TransformJobName: job.name, ExecutionArn: job.executionArn });
        else process.stdout.write(`${started}  follow it: batch-transform wait ${job.name}\n`);
        setExit(EXIT.ok);
      });
    });
}
