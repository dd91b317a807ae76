import { concatStreamed } from './common';
import { FileStorage } from './file';
import { LazyStorage } from './lazy';
import type { S3StorageOptions } from './s3';
import type {
  ByteRange,
  IncompleteUpload,
  ObjectWriter,
  Storage,
  StoredObject,
  WriterOptions,
} from './storage';
import { LocationError } from './uri';

export { ObjectNotFoundError } from './common';
export { FileStorage, type FileStorageOptions } from './file';
export type * from './storage';

export interface StoragesOptions {
  /**
   * The S3 backend (an `S3Storage`, or any Storage), or options to build one with on first use.
   * @default built from `s3ClientConfigFromEnv()` on first use
   */
  readonly s3?: Storage | S3StorageOptions;
  /** @default a FileStorage; pass `false` to refuse file:// locations (the deployed stages do). */
  readonly file?: FileStorage | false;
}

/**
 * A Storage that routes each call by the location's scheme, so one job can read `file://` input
 * and write `s3://` output. The S3 backend (one client, one connection pool) is built on first use,
 * so file-only local runs need no AWS configuration.
 */
export class Storages implements Storage {
  #s3: Storage | undefined;
  /** True when the router built the S3 backend, so destroy() may close it. */
  #ownsS3 = false;
  readonly #s3Options: S3StorageOptions | undefined;
  readonly #file: FileStorage | undefined;

  constructor(options: StoragesOptions = {}) {
    if (isStorage(options.s3)) this.#s3 = options.s3;
    else this.#s3Options = options.s3;
    this.#file = options.file === false ? undefined : (options.file ?? new FileStorage());
  }

  /** The backend that serves `uri`. */
  for(uri: string): Storage {
    if (uri.startsWith('s3://')) {
      if (!this.#s3) {
        // Loaded on first use (LazyStorage): a process that never touches s3:// never loads the SDK.
        const options = this.#s3Options;
        this.#s3 = new LazyStorage(async () => {
          const { S3Storage, s3ClientConfigFromEnv } = await import('./s3');
          return new S3Storage(options ?? s3ClientConfigFromEnv());
        });
        this.#ownsS3 = true;
      }
      return this.#s3;
    }
    if (uri.startsWith('file://')) {
      if (!this.#file) throw new LocationError(`file:// locations are not available here: ${uri}`);
      return this.#file;
    }
    throw new LocationError(`no storage for "${uri}": expected s3://bucket/key or file:///path`);
  }

  list(prefixUri: string): AsyncIterable<StoredObject> {
    return this.for(prefixUri).list(prefixUri);
  }

  head(uri: string): Promise<StoredObject | undefined> {
    return this.for(uri).head(uri);
  }

  read(uri: string, range?: ByteRange, signal?: AbortSignal) {
    return this.for(uri).read(uri, range, signal);
  }

  async readPooled(uri: string, range?: ByteRange, signal?: AbortSignal) {
    return this.for(uri).readPooled?.(uri, range, signal);
  }

  readAll(uri: string): Promise<Buffer> {
    return this.for(uri).readAll(uri);
  }

  put(uri: string, body: Buffer | string, opts?: WriterOptions): Promise<void> {
    return this.for(uri).put(uri, body, opts);
  }

  putIfAbsent(uri: string, body: Buffer | string, opts?: WriterOptions): Promise<boolean> {
    return this.for(uri).putIfAbsent(uri, body, opts);
  }

  createWriter(uri: string, opts?: WriterOptions): ObjectWriter {
    return this.for(uri).createWriter(uri, opts);
  }

  /** Server-side when every location is on the target's backend; streamed across backends otherwise. */
  concat(sources: readonly string[], target: string, opts?: WriterOptions): Promise<void> {
    const backend = this.for(target);
    if (sources.every((s) => this.for(s) === backend)) return backend.concat(sources, target, opts);
    return concatStreamed(this, sources, target, opts);
  }

  delete(uri: string): Promise<void> {
    return this.for(uri).delete(uri);
  }

  async deleteMany(uris: readonly string[]): Promise<void> {
    const byBackend = new Map<Storage, string[]>();
    for (const uri of uris) {
      const backend = this.for(uri);
      byBackend.set(backend, [...(byBackend.get(backend) ?? []), uri]);
    }
    await Promise.all([...byBackend].map(([backend, some]) => backend.deleteMany(some)));
  }

  listIncompleteUploads(prefixUri: string): AsyncIterable<IncompleteUpload> {
    return this.for(prefixUri).listIncompleteUploads(prefixUri);
  }

  abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    return this.for(upload.uri).abortIncompleteUpload(upload);
  }

  /**
   * The same router (sharing its S3 backend, which this one still owns) whose file:// writers fill
   * their temp files under `stagingDir` instead of beside their targets (see FileStorage).
   */
  withFileStaging(stagingDir: string): Storages {
    if (!this.#file) return this;
    this.for('s3://placeholder-bucket/'); // builds the lazy backend here, so both share (and this owns) it
    return new Storages({ ...(this.#s3 ? { s3: this.#s3 } : {}), file: new FileStorage({ stagingDir }) });
  }

  /** Closes the S3 client's sockets if this router built it. */
  destroy(): void {
    if (this.#ownsS3) (this.#s3 as LazyStorage | undefined)?.destroy();
  }
}

function isStorage(s: Storage | S3StorageOptions | undefined): s is Storage {
  return typeof (s as Storage | undefined)?.createWriter === 'function';
}

let shared: Storages | undefined;

/**
 * The process-wide router (S3 from the environment, file:// allowed). Stages that want one object
 * for all locations take `storages()`; code that wants the backend of one location takes `storageFor`.
 */
export function storages(): Storages {
  shared ??= new Storages();
  return shared;
}

export function storageFor(uri: string): Storage {
  return storages().for(uri);
}
