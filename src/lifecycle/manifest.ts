import { StringDecoder } from 'node:string_decoder';
import type { NormalizedJob } from '../contract/job';
import { findObjects } from '../storage/find-objects';
import type { Storage, StoredObject } from '../storage/storage';
import { locationProblem, locationsOverlap } from '../storage/uri';

/** A manifest that cannot be planned from, naming the manifest and what is wrong. */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

/**
 * The objects a manifest lists, in its order. A manifest is a JSON array:
 * `[{"prefix": "s3://bucket/p/"}, "key1", "sub/key2", …]`; each object is the prefix and the entry
 * concatenated as strings, as in SageMaker's TransformS3DataSource.S3Uri docs (research/sagemaker.md
 * Q10): `s3://b/in` + `a.csv` is `s3://b/ina.csv`. It is read as a stream, an element at a time (the
 * text is never held whole), and its entries are confirmed from a listing of their common prefix
 * rather than one HEAD each (`findObjects`). Every listed object must exist; missing ones are named.
 */
export async function listManifest(
  job: NormalizedJob,
  storage: Storage,
): Promise<Array<StoredObject & { relativeKey: string }>> {
  const manifestUri = job.TransformInput.DataSource.S3DataSource.S3Uri;
  const fail = (rest: string) => new ManifestError(`manifest ${manifestUri}${rest}`);
  let prefix: string | undefined;
  const keys: string[] = [];
  try {
    for await (const element of jsonArrayElements(await storage.read(manifestUri))) {
      if (prefix === undefined) {
        const p =
          typeof element === 'object' && element !== null
            ? (element as { prefix?: unknown }).prefix
            : undefined;
        if (typeof p !== 'string') throw shapeError();
        const problem = locationProblem(p);
        if (problem) throw fail(`: prefix "${p}": ${problem}`);
        if (locationsOverlap(p, job.TransformOutput.S3OutputPath)) {
          throw fail(`: its prefix "${p}" overlaps the output location ${job.TransformOutput.S3OutputPath}`);
        }
        prefix = p;
        continue;
      }
      if (typeof element !== 'string' || element.length === 0)
        throw fail(`: element ${keys.length + 1} must be a non-empty key string`);
      keys.push(element);
    }
  } catch (e) {
    if (e instanceof ManifestError) throw e;
    if (e instanceof ShapeError) throw fail(` ${e.message}`);
    throw fail(` cannot be read as JSON: ${(e as Error).message}`);
  }
  if (prefix === undefined) throw fail(` ${new ShapeError().message}`);
  const base = prefix;
  // SageMaker's manifest names `prefix` + entry, concatenated as strings (no `/` inserted).
  const found = await findObjects(
    storage,
    keys.map((k) => base + k),
    base,
  );
  const objects: Array<StoredObject & { relativeKey: string }> = [];
  const missing: string[] = [];
  for (const key of keys) {
    const uri = base + key;
    const o = found.get(uri);
    if (o) objects.push({ uri, size: o.size, relativeKey: key });
    else missing.push(uri);
  }
  if (missing.length > 0) {
    throw fail(
      ` lists ${missing.length} object(s) that do not exist: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`,
    );
  }
  return objects;
}

class ShapeError extends Error {
  override readonly message = 'must be a JSON array whose first element is {"prefix": "s3://bucket/prefix/"}';
}
const shapeError = () => new ShapeError();

/**
 * The elements of the JSON array `chunks` hold, parsed one at a time as the bytes arrive: only the
 * current element's text is held. Throws SyntaxError for text that is not one JSON array, and
 * ShapeError for a JSON value that is not an array.
 */
export async function* jsonArrayElements(chunks: AsyncIterable<Buffer | string>): AsyncGenerator<unknown> {
  const decoder = new StringDecoder('utf8');
  let state: 'before' | 'inside' | 'after' = 'before';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let element = '';
  let index = 0;
  const parse = (text: string): unknown => {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new SyntaxError(`element ${index}: ${(e as Error).message}`);
    }
  };
  const scan = function* (text: string): Generator<unknown> {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (state === 'before') {
        if (isSpace(c) || c === 0xfeff) continue;
        if (c !== 0x5b /* [ */) throw shapeError();
        state = 'inside';
        start = i + 1;
        continue;
      }
      if (state === 'after') {
        if (!isSpace(c)) throw new SyntaxError('text after the array ends');
        continue;
      }
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c /* \ */) escaped = true;
        else if (c === 0x22 /* " */) inString = false;
        continue;
      }
      if (c === 0x22) inString = true;
      else if (c === 0x5b || c === 0x7b /* [ { */) depth++;
      else if (c === 0x5d /* ] */ && depth === 0) {
        element += text.slice(start, i);
        if (element.trim() !== '') {
          yield parse(element);
          index++;
        } else if (index > 0) throw new SyntaxError(`element ${index} is empty`);
        element = '';
        state = 'after';
      } else if (c === 0x5d || c === 0x7d /* ] } */) depth--;
      else if (c === 0x2c /* , */ && depth === 0) {
        yield parse(element + text.slice(start, i));
        index++;
        element = '';
        start = i + 1;
      }
    }
    if (state === 'inside') element += text.slice(start);
  };
  for await (const chunk of chunks) yield* scan(typeof chunk === 'string' ? chunk : decoder.write(chunk));
  yield* scan(decoder.end());
  if (state === 'before') throw new SyntaxError('the manifest is empty');
  if (state === 'inside') throw new SyntaxError('the text ends before the array closes');
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}
