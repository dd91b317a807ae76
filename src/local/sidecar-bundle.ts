import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SIDECAR_ENTRY = join(ROOT, 'containers', 'sidecar', 'src', 'main.ts');
const BUNDLER = join(ROOT, 'containers', 'sidecar', 'bundle.ts');
// Resolved from this file's URL as require() does: the CLI's bundle keeps each source's own URL
// but cannot keep ESM resolution relative to it (bin/cli-bundle.mjs); tsx has one entry for both.
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
/** What the sidecar bundle is made from: its sources, what they import, and the locked dependencies. */
const INPUTS = ['containers/sidecar/src', 'containers/sidecar/bundle.ts', 'src', 'package-lock.json'];

/**
 * The argv (after `node`) that starts the sidecar for a local run: the esbuild bundle a task runs,
 * built on first use into the temp folder and reused while its sources are unchanged. Under tsx the
 * sidecar loads ~100 modules one by one, about 1.5 s of a one-record job here; the bundle starts in
 * about 0.2 s. A failed build falls back to tsx, as does BATCH_TRANSFORM_SIDECAR=tsx (stack traces
 * then name the TypeScript sources), and so does a cache folder that other users can write to.
 */
export async function sidecarArgv(
  env: NodeJS.ProcessEnv = process.env,
  /** Where the bundle cache (`batch-transform/`) lives. */
  tempDir: string = tmpdir(),
): Promise<string[]> {
  const tsx = ['--import', TSX_LOADER, SIDECAR_ENTRY];
  if (env.BATCH_TRANSFORM_SIDECAR === 'tsx') return tsx;
  try {
    const cache = join(tempDir, 'batch-transform');
    await mkdir(cache, { recursive: true });
    if (!ownedByUs(await stat(cache))) return tsx;
    const dir = join(cache, `sidecar-${await sourceKey(ROOT, INPUTS)}`);
    const file = join(dir, 'sidecar.mjs');
    if (!existsSync(file)) await build(dir);
    return [file];
  } catch {
    return tsx;
  }
}

/** Code is run from the cache: only from a folder no other user can write to (as bin/cli-bundle.mjs). */
function ownedByUs(s: { uid: number; mode: number }): boolean {
  return !process.getuid || (s.uid === process.getuid() && (s.mode & 0o022) === 0);
}

/**
 * A key that changes whenever a file under `inputs` (relative to `root`) is added, removed or
 * modified: a hash of every file's path, size and modification time.
 */
export async function sourceKey(root: string, inputs: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const input of inputs) {
    const path = join(root, input);
    const s = await stat(path).catch(() => undefined);
    if (!s) {
      hash.update(`${input}\0missing\n`);
      continue;
    }
    const files = s.isDirectory()
      ? (await readdir(path, { recursive: true, withFileTypes: true }))
          .filter((e) => e.isFile())
          .map((e) => join(e.parentPath, e.name))
          .sort()
      : [path];
    for (const file of files) {
      const f = file === path ? s : await stat(file);
      hash.update(`${relative(root, file)}\0${f.size}\0${f.mtimeMs}\n`);
    }
  }
  return hash.digest('hex').slice(0, 16);
}

/** Bundles into a folder of its own, then moves it into place (two runs may race; either wins). */
async function build(dir: string): Promise<void> {
  const temp = `${dir}.${process.pid}.${Date.now()}`;
  await mkdir(temp, { recursive: true });
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', TSX_LOADER, BUNDLER, '--outdir', temp], {
        cwd: ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString('utf8');
      });
      child.once('error', reject);
      child.once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`bundling the sidecar failed: ${stderr}`)),
      );
    });
    await rename(temp, dir).catch((e: NodeJS.ErrnoException) => {
      if (!existsSync(join(dir, 'sidecar.mjs'))) throw e;
    });
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}
