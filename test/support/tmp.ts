import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh folder under the system temp dir, removed by `remove()` (or at the latest at process exit). */
export interface TempDir {
  /** Absolute path, no trailing slash. */
  readonly path: string;
  /** `file://<path>/`, ready to join keys onto. */
  readonly uri: string;
  remove(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const live = new Set<string>();
// A test that throws before its cleanup still must not leave folders behind.
process.once('exit', () => {
  for (const path of live) rmSync(path, { recursive: true, force: true });
});

export async function makeTempDir(label = 'bt'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `${label}-`));
  live.add(path);
  const remove = async () => {
    live.delete(path);
    await rm(path, { recursive: true, force: true });
  };
  return { path, uri: `file://${path}/`, remove, [Symbol.asyncDispose]: remove };
}
