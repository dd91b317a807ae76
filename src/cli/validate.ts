import type { Command } from 'commander';
import { INSTANCE_CATALOG } from '../job/instances';
import { formatProblems } from '../job/problems';
import { checkRequest } from '../job/validate';
import { EXIT, printJson, readRequestReportingJson } from './io';

export function registerValidate(program: Command, setExit: (code: number) => void): void {
  program
    .command('validate')
    .description(
      'Check a CreateTransformJob request without running it: prints the normalized job (every default explicit) or every problem with its field path.',
    )
    .argument('<file>', 'request JSON file, or - for standard input')
    .option('--json', 'print problems as a JSON array of {path, message} on standard output')
    .option('--local', 'validate for a local run (file:// locations allowed, any catalog instance type)')
    .option(
      '--enabled-instance-types <types>',
      'comma-separated ml.* types with EC2 capacity in the target deployment (default: every catalog type)',
    )
    .option(
      '--max-instance-count <n>',
      'the deployment limit on InstanceCount',
      (v) => Number.parseInt(v, 10),
      100,
    )
    .addHelpText(
      'after',
      '\nExit codes: 0 valid, 2 invalid (or unreadable input).\n\nExample:\n  batch-transform validate examples/iris/job.json --local',
    )
    .action(
      async (
        file: string,
        opts: { json?: boolean; local?: boolean; enabledInstanceTypes?: string; maxInstanceCount: number },
      ) => {
        const request = await readRequestReportingJson(file, opts.json);
        const result = checkRequest(request, {
          local: opts.local === true,
          maxInstanceCount: opts.maxInstanceCount,
          enabledInstanceTypes: opts.enabledInstanceTypes
            ? opts.enabledInstanceTypes
                .split(',')
                .map((s) => s.trim())
                .filter(Boolean)
            : Object.keys(INSTANCE_CATALOG),
        });
        if (result.ok) {
          // Fields a copied SageMaker request may set that change nothing here: named on standard
          // error, so the JSON on standard output stays the normalized job (which lists them too).
          for (const w of result.warnings) process.stderr.write(`warning: ${w.path}: ${w.message}\n`);
          printJson(result.job);
          setExit(EXIT.ok);
          return;
        }
        if (opts.json) printJson(result.problems);
        else {
          const name = (request as { TransformJobName?: unknown })?.TransformJobName;
          process.stderr.write(
            `${formatProblems(result.problems, typeof name === 'string' ? name : undefined)}\n`,
          );
        }
        setExit(EXIT.invalid);
      },
    );
}
