import { mkdir } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { x as extract } from 'tar';
import type { Storage } from '../storage/storage';

/**
 * Fetches a model's artifacts (ModelDataUrl, a `.tar.gz` as SageMaker expects) and extracts them into
 * `dir` (in a task, /opt/ml/model, before the model container starts). Streams: the archive is never
 * held in memory or on disk whole. An archive that is not gzip-compressed tar is an error that says so.
 */
export async function fetchModelData(
  storage: Storage,
  modelDataUrl: string,
  dir: string,
): Promise<{ files: number }> {
  await mkdir(dir, { recursive: true });
  let files = 0;
  let refused: string | undefined;
  try {
    const body = await storage.read(modelDataUrl);
    await pipeline(
      body,
      extract({
        cwd: dir,
        strict: true,
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
    );
  } catch (e) {
    const why = (e as Error).message;
    throw new Error(
      /not found|no object/i.test(why)
        ? `model artifacts ${modelDataUrl} not found: ${why}`
        : `cannot extract model artifacts from ${modelDataUrl} (expected a .tar.gz): ${why}`,
    );
  }
  if (refused !== undefined)
    throw new Error(
      `model artifacts ${modelDataUrl} hold an entry outside the model directory ("${refused}"); refusing the archive`,
    );
  return { files };
}
