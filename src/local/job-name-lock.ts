import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * A local job name held by a running job: the file `<dir>/<job>.lock`, created exclusively (so two
 * runs cannot both create it) and holding the PID of the process that runs the job. SageMaker
 * refuses a second job of a name (ResourceInUse); locally a name is refused while a job of that name
 * runs, and free again once it ended, so the quick start can be run twice in a row.
 *
 * A lock whose process is gone (the CLI was SIGKILLed) is stale: the next run takes it over and is
 * told so, to clean up what the dead run left.
 */
export class JobNameInUseError extends Error {
  override readonly name = 'JobNameInUseError';
  constructor(
    readonly jobName: string,
    readonly pid: number,
  ) {
    super(
      `a local transform job named "${jobName}" is running (process ${pid}); job names are unique while their job runs: wait for it to end, or choose another TransformJobName`,
    );
  }
}

export interface JobNameLock {
  readonly path: string;
  /** True when the name was held by a process that is gone: its run ended without cleaning up. */
  readonly tookOverFromDeadRun: boolean;
  release(): Promise<void>;
}

/** Takes the job name, or throws JobNameInUseError when a live process holds it. */
export async function lockJobName(lockPath: string, jobName: string): Promise<JobNameLock> {
  await mkdir(dirname(lockPath), { recursive: true });
  let tookOver = false;
  // A few tries: again after removing a stale lock, or when the holder released it while we looked.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const file = await open(lockPath, 'wx');
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      let released = false;
      return {
        path: lockPath,
        tookOverFromDeadRun: tookOver,
        async release() {
          if (released) return;
          released = true;
          // Only our own lock: a lock file another process holds now is not ours to remove.
          if ((await readHolder(lockPath)) === process.pid) await unlink(lockPath).catch(() => {});
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = await readHolder(lockPath);
    if (holder === 'missing') continue;
    // A lock being written right now reads empty: its process is alive, so the name is in use;
    // one still empty after EMPTY_LOCK_STALE_MS was left by a process that died while writing it.
    if (holder === undefined ? !(await emptyForLong(lockPath)) : processAlive(holder))
      throw new JobNameInUseError(jobName, holder ?? 0);
    await unlink(lockPath).catch(() => {});
    tookOver = true;
  }
  const holder = await readHolder(lockPath);
  throw new JobNameInUseError(jobName, typeof holder === 'number' ? holder : 0);
}

/** Far longer than writing a PID into a file just created takes. */
const EMPTY_LOCK_STALE_MS = 10_000;

async function emptyForLong(path: string): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > EMPTY_LOCK_STALE_MS;
  } catch {
    return true;
  }
}

/** The PID in a lock file; undefined while it is being written, 'missing' when there is none. */
async function readHolder(path: string): Promise<number | undefined | 'missing'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return 'missing';
  }
  const pid = Number.parseInt(text, 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
