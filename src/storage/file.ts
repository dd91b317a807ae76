import { randomBytes } from 'node:crypto';
import { createReadStream, type Dirent } from 'node:fs';
import {
  copyFile,
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
} from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import {
  checkRange,
  compareKeys,
  concatStreamed,
  LentBuffers,
  ObjectNotFoundError,
  unsatisfiableRange,
} from './common';
import type {
  ByteRange,
  IncompleteUpload,
  ObjectWriter,
  PooledRead,
  Storage,
  StoredObject,
  WriterOptions,
} from './storage';
import { LocationError, parseLocation } from './uri';

/**
 * Object storage over a local folder tree, for `file:///absolute/path` locations (local runs and
 * tests). It keeps S3's semantics where callers can tell: raw string-prefix listing in key order,
 * nothing visible until a writer completes, and unfinished writes that can be listed and aborted.
 *
 * A writer fills a hidden temp file, `.<name>.partial-<16 hex>`, and renames it into place on
 * complete: these files are the "incomplete uploads" and never show in `list`. Without a staging
 * folder the temp file sits beside its target; with one (`stagingDir`, what local runs use) it sits
 * at the target's path mirrored under that folder, so nothing partial is ever under the output
 * location, as S3 shows nothing of a multipart upload before it completes.
 */

export interface FileStorageOptions {
  /**
   * Absolute folder where writers fill their temp files (mirroring the target's path) before the
   * rename into place. Keep it on the outputs' file system: across file systems the bytes are copied
   * into a temp file beside the target first, which is then visible while the copy runs.
   * @default - temp files beside their targets
   */
  readonly stagingDir?: string;
}

/**
 * Bytes per read of a file:// object. The default 64 KiB makes a 6 MiB mini-batch ~100 slices (each
 * a socket write when the body is sent) and 16 thread-pool reads per MiB. In the benchmark (192 MB
 * job) 256 KiB took the sidecar from ~8.6 to ~6.7 CPU s per GiB; 1 MiB saved little more CPU and
 * held ~10 MB more at the RSS peak (the stream reads a chunk ahead, the open batch holds whole chunks).
 * Since the model client reads responses into reused blocks, the reads are a larger share of what is
 * left: 512 KiB took 2.90 against 3.20 CPU s per GiB (medians of 4 interleaved runs of the old and
 * the new bundle on the 1000 MB job, loaded machine) at the same peak RSS (108–113 MiB both).
 */
const READ_CHUNK = 512 * 1024;

const TEMP_FILE = /^\.(.+)\.partial-[0-9a-f]{16}$/;

const isMissing = (err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/**
 * The path of a file:// location. Callers build locations by joining keys onto prefixes, so a key
 * with `..`, `.` or empty segments could reach outside the prefix: such paths are refused rather
 * than resolved.
 */
function filePath(uri: string): string {
  const loc = parseLocation(uri);
  if (loc.scheme !== 'file') throw new LocationError(`FileStorage handles file:// locations, not ${uri}`);
  const normalized = posix.normalize(loc.path);
  if (normalized !== loc.path) {
    throw new LocationError(
      `refusing ${uri}: its path has ".", ".." or empty segments (it would resolve to ${normalized}); ` +
        'keys must not climb out of the prefix they are joined to',
    );
  }
  return loc.path;
}

const fileUri = (path: string) => `file://${path}`;

interface WalkedFile {
  readonly dir: string;
  readonly name: string;
  readonly path: string;
}

/**
 * Every file under the folder that `prefix` (a raw path prefix) can match, in key order, skipping
 * folders no key under the prefix can live in. Siblings sort with `/` appended to folder names, so
 * a depth-first walk yields paths in the same byte order as S3 lists keys (`a-b` before `a/x`).
 * Symbolic links to files are followed; links to folders are not (no cycles).
 */
async function* walk(prefix: string): AsyncGenerator<WalkedFile> {
  const start = prefix.endsWith('/') ? prefix : posix.dirname(prefix);
  yield* walkFolder(start === '/' ? '' : start.replace(/\/$/, ''), prefix);
}

async function* walkFolder(dir: string, prefix: string): AsyncGenerator<WalkedFile> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir || '/', { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return;
    throw err;
  }
  const sorted = entries
    .filter((e) => e.isDirectory() || e.isFile() || e.isSymbolicLink())
    .map((e) => ({ entry: e, sortKey: e.isDirectory() ? `${e.name}/` : e.name }))
    .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
  for (const { entry } of sorted) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      const asFolder = `${path}/`;
      if (asFolder.startsWith(prefix) || prefix.startsWith(asFolder)) yield* walkFolder(path, prefix);
    } else {
      yield { dir, name: entry.name, path };
    }
  }
}

/** Size of a regular file (following links), or undefined if there is none. */
async function fileSize(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

export class FileStorage implements Storage {
  /** Absolute, without a trailing slash; undefined when temp files sit beside their targets. */
  readonly stagingDir: string | undefined;

  constructor(options: FileStorageOptions = {}) {
    const dir = options.stagingDir;
    if (dir !== undefined && !dir.startsWith('/'))
      throw new LocationError(`the staging folder must be absolute: ${dir}`);
    this.stagingDir = dir?.replace(/\/+$/, '');
  }

  async *list(prefixUri: string): AsyncIterable<StoredObject> {
    const prefix = filePath(prefixUri);
    for await (const file of walk(prefix)) {
      if (!file.path.startsWith(prefix) || TEMP_FILE.test(file.name)) continue;
      const size = await fileSize(file.path);
      if (size !== undefined) yield { uri: fileUri(file.path), size };
    }
  }

  async head(uri: string): Promise<StoredObject | undefined> {
    try {
      const s = await stat(filePath(uri));
      return s.isFile() ? { uri, size: s.size, lastModified: s.mtime } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async read(uri: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const path = filePath(uri);
    if (range) checkRange(uri, range);
    const size = await fileSize(path);
    if (size === undefined) throw new ObjectNotFoundError(uri);
    if (!range) return createReadStream(path, { signal, highWaterMark: READ_CHUNK });
    if (range.start === range.end) return Readable.from([]);
    if (range.start >= size) throw unsatisfiableRange(uri, range, size);
    // createReadStream's end is inclusive; a range ending past the object is clamped, as in S3.
    return createReadStream(path, {
      start: range.start,
      end: Math.min(range.end, size) - 1,
      signal,
      highWaterMark: READ_CHUNK,
    });
  }

  /**
   * `read`, into buffers of READ_CHUNK bytes that are read into again once the caller releases
   * them (see PooledRead); one read ahead of the caller, like the stream.
   */
  async readPooled(uri: string, range?: ByteRange, signal?: AbortSignal): Promise<PooledRead> {
    const path = filePath(uri);
    if (range) checkRange(uri, range);
    const size = await fileSize(path);
    if (size === undefined) throw new ObjectNotFoundError(uri);
    if (range && range.start >= size && range.start !== range.end) throw unsatisfiableRange(uri, range, size);
    const start = range ? range.start : 0;
    return new PooledFileRead(path, start, range ? Math.max(start, Math.min(range.end, size)) : size, signal);
  }

  async readAll(uri: string): Promise<Buffer> {
    try {
      return await readFile(filePath(uri));
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'EISDIR') {
        throw new ObjectNotFoundError(uri, { cause: err });
      }
      throw err;
    }
  }

  async put(uri: string, body: Buffer | string, opts: WriterOptions = {}): Promise<void> {
    const writer = this.createWriter(uri, opts);
    try {
      await writer.write(typeof body === 'string' ? Buffer.from(body) : body);
      await writer.complete();
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  /**
   * The bytes go to a temp file first and are linked into place: `link` fails with EEXIST if the
   * name is taken, atomically, and a reader never sees a half-written object (as it could after an
   * `open(…, 'wx')` followed by writes).
   */
  async putIfAbsent(uri: string, body: Buffer | string, _opts: WriterOptions = {}): Promise<boolean> {
    const path = filePath(uri);
    const name = posix.basename(path);
    if (path.endsWith('/') || TEMP_FILE.test(name)) {
      throw new LocationError(`cannot write an object at ${uri}: not a file name this storage can own`);
    }
    const dir = posix.dirname(path);
    const temp = `${dir === '/' ? '' : dir}/.${name}.partial-${randomBytes(8).toString('hex')}`;
    await mkdir(dir, { recursive: true });
    const file = await open(temp, 'wx');
    try {
      await file.writeFile(body);
      await file.datasync();
      await file.close();
      await link(temp, path);
      return true;
    } catch (err) {
      await file.close().catch(() => {});
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    } finally {
      await unlink(temp).catch(() => {});
    }
  }

  createWriter(uri: string, _opts: WriterOptions = {}): ObjectWriter {
    const path = filePath(uri);
    const name = posix.basename(path);
    if (path.endsWith('/') || TEMP_FILE.test(name)) {
      throw new LocationError(`cannot write an object at ${uri}: not a file name this storage can own`);
    }
    return new FileObjectWriter(uri, path, this.stagingDir);
  }

  concat(sources: readonly string[], target: string, opts: WriterOptions = {}): Promise<void> {
    return concatStreamed(this, sources, target, opts);
  }

  async deleteMany(uris: readonly string[]): Promise<void> {
    for (const uri of uris) await this.delete(uri);
  }

  async delete(uri: string): Promise<void> {
    try {
      await unlink(filePath(uri));
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }

  async *listIncompleteUploads(prefixUri: string): AsyncIterable<IncompleteUpload> {
    const prefix = filePath(prefixUri);
    // Temp files beside their targets, then those mirrored under the staging folder.
    for (const mirror of ['', ...(this.stagingDir ? [this.stagingDir] : [])]) {
      for await (const file of walk(mirror + prefix)) {
        const target = TEMP_FILE.exec(file.name)?.[1];
        if (target === undefined) continue;
        const targetPath = `${file.dir.slice(mirror.length)}/${target}`;
        if (!targetPath.startsWith(prefix)) continue;
        try {
          const { mtime } = await stat(file.path);
          yield { uri: fileUri(targetPath), uploadId: file.name, initiated: mtime };
        } catch (err) {
          if (!isMissing(err)) throw err; // completed or aborted while we looked
        }
      }
    }
  }

  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    const path = filePath(upload.uri);
    // The upload id is a temp file name of the target; anything else is not ours to delete.
    if (TEMP_FILE.exec(upload.uploadId)?.[1] !== posix.basename(path)) {
      throw new Error(`"${upload.uploadId}" is not an incomplete upload of ${upload.uri}`);
    }
    const dir = posix.dirname(path) === '/' ? '' : posix.dirname(path);
    for (const mirror of ['', ...(this.stagingDir ? [this.stagingDir] : [])]) {
      await unlink(`${mirror}${dir}/${upload.uploadId}`).catch((err) => {
        if (!isMissing(err)) throw err;
      });
    }
  }
}

/** The reader behind FileStorage.readPooled. */
class PooledFileRead implements PooledRead {
  readonly #buffers = new LentBuffers();

  constructor(
    private readonly path: string,
    private readonly start: number,
    private readonly end: number,
    private readonly signal: AbortSignal | undefined,
  ) {}

  release(offset: number): void {
    this.#buffers.release(offset);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    const { end, signal } = this;
    signal?.throwIfAborted();
    const file = await open(this.path, 'r');
    const readAt = async (at: number) => {
      // A small object gets a buffer its size: a partition may open thousands of them.
      const buffer =
        this.#buffers.reuse() ?? Buffer.allocUnsafeSlow(Math.min(READ_CHUNK, Math.max(1, end - at)));
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, end - at), at);
      return { buffer, bytesRead };
    };
    let next: ReturnType<typeof readAt> | undefined;
    try {
      let at = this.start;
      next = at < end ? readAt(at) : undefined;
      while (next) {
        const { buffer, bytesRead } = await next;
        next = undefined;
        signal?.throwIfAborted();
        if (bytesRead === 0) break; // the file shrank under us: end where it ends now
        at += bytesRead;
        this.#buffers.lend(buffer, at);
        next = at < end ? readAt(at) : undefined;
        yield buffer.subarray(0, bytesRead);
      }
    } finally {
      await next?.catch(() => {});
      await file.close();
    }
  }
}

/** `chunks` without their first `n` bytes. */
function afterBytes(chunks: readonly Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < chunks.length && n >= chunks[i]!.length) n -= chunks[i++]!.length;
  const rest = chunks.slice(i);
  if (n > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(n);
  return rest;
}

type WriterState = 'open' | 'completing' | 'completed' | 'aborted' | 'failed';

class FileObjectWriter implements ObjectWriter {
  readonly uri: string;
  /** A write resolves once `writev` has copied its chunks into the file. */
  readonly releasesChunks = true;
  readonly #path: string;
  readonly #tempPath: string;
  /** Set while a staged temp file is copied across file systems into a temp file beside the target. */
  #besidePath: string | undefined;
  #bytes = 0;
  #state: WriterState = 'open';
  #file: Promise<FileHandle> | undefined;
  #completion: Promise<void> | undefined;
  /** The last operation on the temp file; abort waits for it so no write lands after the unlink. */
  #pending: Promise<unknown> = Promise.resolve();

  constructor(uri: string, path: string, stagingDir: string | undefined) {
    this.uri = uri;
    this.#path = path;
    const dir = posix.dirname(path);
    this.#tempPath = `${stagingDir ?? ''}${dir === '/' ? '' : dir}/${tempName(posix.basename(path))}`;
  }

  get bytesWritten(): number {
    return this.#bytes;
  }

  #open(): Promise<FileHandle> {
    this.#file ??= (async () => {
      await mkdir(posix.dirname(this.#tempPath), { recursive: true });
      return open(this.#tempPath, 'wx');
    })();
    return this.#file;
  }

  write(chunk: Buffer): Promise<void> {
    return this.writeMany([chunk]);
  }

  /** Appends the chunks in order with one `writev` (more only if the system writes part of them). */
  writeMany(chunks: readonly Buffer[]): Promise<void> {
    if (this.#state !== 'open') {
      return Promise.reject(new Error(`cannot write to ${this.uri}: the writer is ${this.#state}`));
    }
    let left = chunks.filter((c) => c.length > 0);
    let total = 0;
    for (const c of left) total += c.length;
    const op = this.#pending.then(async () => {
      const file = await this.#open();
      for (let remaining = total; remaining > 0; ) {
        const { bytesWritten } = await file.writev(left);
        if (bytesWritten <= 0) throw new Error('the file system accepted no bytes');
        remaining -= bytesWritten;
        if (remaining > 0) left = afterBytes(left, bytesWritten);
      }
      this.#bytes += total;
    });
    this.#pending = op.catch(() => {});
    return op;
  }

  complete(): Promise<void> {
    if (this.#completion) return this.#completion;
    if (this.#state !== 'open') {
      return Promise.reject(new Error(`cannot complete ${this.uri}: the writer is ${this.#state}`));
    }
    this.#state = 'completing';
    this.#completion = this.#finish();
    return this.#completion;
  }

  async #finish(): Promise<void> {
    try {
      await this.#pending;
      const file = await this.#open();
      // Flush before the rename, so a crash cannot leave a complete-looking but empty object.
      await file.datasync();
      await file.close();
      await mkdir(posix.dirname(this.#path), { recursive: true });
      await this.#moveIntoPlace();
      this.#state = 'completed';
    } catch (err) {
      this.#state = 'failed';
      await this.#removeTemp();
      throw new Error(`writing ${this.uri} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async abort(): Promise<void> {
    // A complete() under way decides the outcome; if it failed it has already removed the temp file.
    if (this.#completion) await this.#completion.catch(() => {});
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    await this.#pending;
    await this.#removeTemp();
  }

  async #moveIntoPlace(): Promise<void> {
    try {
      await rename(this.#tempPath, this.#path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    }
    // The staging folder is on another file system: a rename cannot cross it, so copy beside the
    // target under a temp name (listed and aborted like any temp file), then rename that.
    const dir = posix.dirname(this.#path);
    this.#besidePath = `${dir === '/' ? '' : dir}/${tempName(posix.basename(this.#path))}`;
    await copyFile(this.#tempPath, this.#besidePath);
    await rename(this.#besidePath, this.#path);
    this.#besidePath = undefined;
    await unlink(this.#tempPath).catch(() => {});
  }

  async #removeTemp(): Promise<void> {
    if (!this.#file) return;
    await this.#file.then((f) => f.close()).catch(() => {}); // already closed, or never opened
    for (const path of [this.#tempPath, this.#besidePath]) {
      if (path === undefined) continue;
      await unlink(path).catch((err) => {
        if (!isMissing(err)) throw err;
      });
    }
  }
}

const tempName = (name: string) => `.${name}.partial-${randomBytes(8).toString('hex')}`;
