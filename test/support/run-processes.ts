import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Finding every process of a local run, and what partial files it left. A run's processes (the CLI,
 * its sidecars, its model servers and their children) all inherit the CLI's environment, so a marker
 * variable set on the CLI finds them in /proc (Linux), however they were started.
 */
export const RUN_MARKER = 'BT_TEST_RUN_MARKER';

/** PIDs of live processes whose environment holds `RUN_MARKER=<marker>` (zombies excluded). */
export async function processesOfRun(marker: string): Promise<number[]> {
  const needle = Buffer.from(`\0${RUN_MARKER}=${marker}\0`);
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = await readFile(`/proc/${name}/environ`);
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // A zombie (state Z) has ended; only its parent has not collected it yet.
      if (Buffer.concat([Buffer.from([0]), env]).includes(needle) && !/\) Z /.test(stat)) pids.push(+name);
    } catch {
      // gone while we looked, or not ours to read
    }
  }
  return pids;
}

/** Every file under `dir` whose name says it is a partial write (of an output, when `outputs`). */
export async function partialFiles(dir: string, outputs = false): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.includes(outputs ? '.out.partial-' : '.partial-'))
    .map((e) => join(e.parentPath, e.name));
}

/** Polls `probe` every 100 ms until it returns a value; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
