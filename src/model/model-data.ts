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
  const body = await storage.read(modelDataUrl);
  try {
    await pipeline(
      body,
      extract({
        cwd: dir,
        strict: true,
        // Entries that would land outside `dir` (absolute paths, `..`) are refused by tar's defaults.
        onReadEntry: () => {
          files++;
        },
      }),
    );
  } catch (e) {
    throw new Error(
      `cannot extract model artifacts from ${modelDataUrl} (expected a .tar.gz): ${(e as Error).message}`,
    );
  }
  return { files };
}
