import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerApi } from './api';
import { registerDescribe } from './describe';
import { CliError, EXIT } from './io';
import { registerList } from './list';
import { registerRun } from './run';
import { registerSchema } from './schema';
import { registerStop } from './stop';
import { registerSubmit } from './submit';
import { registerValidate } from './validate';
import { registerWait } from './wait';

/** Builds the `batch-transform` program. Each verb lives in its own module. */
export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('batch-transform')
    .description('SageMaker Batch Transform in your own AWS account, or on this machine with --local.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError()
    .exitOverride();
  registerValidate(program, setExit);
  registerRun(program, setExit);
  // Verbs on a deployed stack, thin over the typed client (src/client).
  registerSubmit(program, setExit);
  registerDescribe(program, setExit);
  registerWait(program, setExit);
  registerStop(program, setExit);
  registerList(program, setExit);
  registerSchema(program);
  registerApi(program, setExit);
  return program;
}

/** Runs the CLI and returns the exit code (0 ok, 1 job failed or stopped, 2 invalid request or usage). */
export async function main(argv: readonly string[]): Promise<number> {
  endQuietlyOnClosedStdout();
  let code: number = EXIT.ok;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync([...argv]);
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version are "errors" to commander; they already printed.
      return e.exitCode === 0 ? EXIT.ok : EXIT.invalid;
    }
    if (e instanceof CliError) {
      process.stderr.write(`batch-transform: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}

let watchingStdout = false;

/**
 * `batch-transform submit --help | head`: once the reader has gone, further output cannot be read
 * and the command ends at once, quietly, as Unix tools do on EPIPE (SIGPIPE is ignored by Node).
 */
function endQuietlyOnClosedStdout(): void {
  if (watchingStdout) return;
  watchingStdout = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}
