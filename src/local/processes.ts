import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';

/** A free TCP port on loopback (the OS picks; a race with another process is possible but rare). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  readonly name: string;
  /** Resolves when the process has exited, with its code or signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Undefined while running, else how it ended ("exited with code 1", "killed by SIGKILL"). */
  exitReason(): string | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a child process whose output goes to a log file (so a worker's logs can be read after the
 * run) and tracks how it ended. Children are killed if this process exits.
 */
const TAIL_CHARS = 2048;

export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  opts: {
    env: NodeJS.ProcessEnv;
    cwd?: string;
    logFile: string;
    shell?: boolean;
    /** Add the last lines the process printed to its exit reason. @default true */
    reportOutput?: boolean;
    /**
     * Give the child a standard input that this process holds open and never writes: it reaches end
     * of file when this process dies, however it dies (even SIGKILL), so a child that reads it can
     * end itself rather than work on as an orphan. @default false
     */
    parentPipe?: boolean;
  },
): ManagedProcess {
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  const child = spawn(command, args, {
    env: opts.env,
    cwd: opts.cwd,
    stdio: [opts.parentPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    shell: opts.shell ?? false,
    detached: process.platform !== 'win32',
  });
  // An EPIPE once the child has gone is expected; nothing is ever written to it.
  child.stdin?.on('error', () => {});
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  // The last thing a process printed usually says why it exited: keep it for the exit reason.
  let tail = '';
  const keepTail = (d: Buffer) => {
    tail = (tail + d.toString('utf8')).slice(-TAIL_CHARS);
  };
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);
  const lastOutput = () => {
    const last = lastMeaningfulLine(tail);
    if (!last) return '';
    return `; last output: ${last.length > 400 ? `${last.slice(0, 399)}…` : last}`;
  };
  let reason: string | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (e) => {
      reason = `could not start: ${e.message}`;
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      reason ??= signal
        ? `killed by ${signal}`
        : `exited with code ${code}${code === 0 || opts.reportOutput === false ? '' : lastOutput()}`;
      resolve({ code, signal });
    });
  });
  // Output still in the pipes after the exit lands in the log first. Unreferenced: a run that is
  // done waits for pending writes, never for this timer.
  void exited.then(() => setTimeout(() => log.end(), 50).unref());
  const killGroup = (signal: NodeJS.Signals) => {
    if (child.pid === undefined || reason !== undefined) return;
    try {
      // The whole group: a `--model-command` run through a shell has its server as a grandchild.
      process.kill(-child.pid, signal);
    } catch {
      child.kill(signal);
    }
  };
  const onParentExit = () => killGroup('SIGKILL');
  process.once('exit', onParentExit);
  void exited.then(() => process.off('exit', onParentExit));
  return {
    child,
    name,
    exited,
    exitReason: () => reason,
    async stop(graceMs = 5000) {
      if (reason !== undefined) return;
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * The line of a process's last output that says why it ended: its last line, except after an
 * uncaught Node error, whose output ends with a stack, the error's properties and `Node.js vX`:
 * then the error's own line (`Error: Cannot find module …`).
 */
export function lastMeaningfulLine(output: string): string | undefined {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const last = lines.at(-1);
  if (!last || !/^Node\.js v\d/.test(last)) return last;
  return lines.findLast((l) => /^(\w+\s)?\w*(Error|Exception)\b.*:/.test(l)) ?? lines.at(-2);
}
