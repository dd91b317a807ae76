import type { StoredJob } from '../contract/job';
import type { Storage } from './storage';

export async function readJson<T>(storage: Storage, uri: string): Promise<T> {
  const body = await storage.readAll(uri);
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (e) {
    throw new Error(`${uri} is not valid JSON: ${(e as Error).message}`);
  }
}

export async function readJsonIfExists<T>(storage: Storage, uri: string): Promise<T | undefined> {
  if (!(await storage.head(uri))) return undefined;
  return readJson<T>(storage, uri);
}

export async function writeJson(storage: Storage, uri: string, value: unknown): Promise<void> {
  await storage.put(uri, `${JSON.stringify(value, null, 2)}\n`, { contentType: 'application/json' });
}

/** One line of JSON: for documents that grow with the job (plan, partitions), read by programs. */
export async function writeCompactJson(storage: Storage, uri: string, value: unknown): Promise<void> {
  await storage.put(uri, `${JSON.stringify(value)}\n`, { contentType: 'application/json' });
}

export const readStoredJob = (storage: Storage, jobUri: string) => readJson<StoredJob>(storage, jobUri);
