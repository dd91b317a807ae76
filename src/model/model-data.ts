import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { x as extract } from 'tar';
import type { Storage } from '../storage/storage';

/**
 * Fetches a model's artifacts (ModelDataUrl, a `.tar.gz` as SageMaker expects) and extracts them into
 * `dir` (in a task, /opt/ml/model, before the model container starts). Streams: the archive is never
 * held in memory or on disk whole.
 *
 * The archive's owners and modes are not kept: the model container may run as any user, so every
 * entry ends up owned by whoever extracts and readable (directories also searchable) by everyone.
 * An error says what went wrong: an archive that is not gzip-compressed tar is named as such, a
 * file-system error (EACCES, ENOSPC, …) keeps its code and path.
 */
export async function fetchModelData(
  storage: Storage,
  modelDataUrl: string,
  dir: string,
): Promise<{ files: number }> {
  let files = 0;
  const fail = (e: unknown): never => {
    const err = e as NodeJS.ErrnoException & { tarCode?: string };
    if (/not found|no object|NoSuchKey/i.test(err.message) && !err.syscall)
      throw new Error(`model artifacts ${modelDataUrl} not found: ${err.message}`, { cause: e });
    const format = isFormatError(err) ? ' (not a gzip-compressed tar archive)' : '';
    throw new Error(
      `cannot extract model artifacts from ${modelDataUrl} into ${dir}${format}: ${err.message}`,
      {
        cause: e,
      },
    );
  };
  let refused: string | undefined;
  await mkdir(dir, { recursive: true }).catch(fail);
  const body = await storage.read(modelDataUrl).catch(fail);
  await pipeline(
    body,
    extract({
      cwd: dir,
      strict: true,
      // As root, tar would otherwise give each file the archive's uid/gid (e.g. 501 from a Mac).
      preserveOwner: false,
      // Entries that would land outside `dir` (absolute paths, `..`) are refused: the archive is
      // refused with them, rather than extracted in part.
      filter: (path) => {
        if (path.startsWith('/') || path.split('/').includes('..')) refused ??= path;
        return refused === undefined;
      },
      onReadEntry: () => {
        files++;
      },
    }),
  ).catch(fail);
  if (refused !== undefined)
    throw new Error(
      `model artifacts ${modelDataUrl} hold an entry outside the model directory ("${refused}"); refusing the archive`,
    );
  await readableByAll(dir).catch(fail);
  return { files };
}

/** Adds read permission (and search, on directories) for everyone, under `path` and on `path` itself. */
async function readableByAll(path: string): Promise<void> {
  const stat = await lstat(path);
  if (stat.isSymbolicLink()) return;
  const mode = stat.mode & 0o7777;
  const wanted = mode | (stat.isDirectory() ? 0o555 : 0o444);
  // Only when something is missing: the extracting user may not own `dir` itself.
  if (wanted !== mode) await chmod(path, wanted);
  if (stat.isDirectory()) for (const name of await readdir(path)) await readableByAll(join(path, name));
}

/**
 * zlib's and tar's own errors: the bytes are not what a .tar.gz holds. tar also reports a file-system
 * error of an entry with a `tarCode`, but that one keeps its `syscall` (open, mkdir, …).
 */
function isFormatError(e: NodeJS.ErrnoException & { tarCode?: string }): boolean {
  if (e.syscall) return false;
  return (typeof e.code === 'string' && e.code.startsWith('Z_')) || typeof e.tarCode === 'string';
}
