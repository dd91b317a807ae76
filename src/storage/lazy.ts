import type { Readable } from 'node:stream';
import type {
  ByteRange,
  IncompleteUpload,
  ObjectWriter,
  PooledRead,
  Storage,
  StoredObject,
  WriterOptions,
} from './storage';

/**
 * A Storage whose backend is built on first use by an async `load` (a dynamic import). The S3
 * backend brings the AWS SDK with it: about 10 MB of memory and a tenth of a second of start-up
 * that a process touching only file:// locations (a local run's sidecar) never needs. The bundle
 * keeps the SDK in a chunk of its own that such a process never reads.
 */
export class LazyStorage implements Storage {
  #backend: Promise<Storage> | undefined;
  #loaded: Storage | undefined;
  #destroyed = false;

  constructor(private readonly load: () => Promise<Storage>) {}

  backend(): Promise<Storage> {
    this.#backend ??= this.load().then((b) => {
      this.#loaded = b;
      // destroy() came while it was loading: close what was built.
      if (this.#destroyed) destroyBackend(b);
      return b;
    });
    return this.#backend;
  }

  async *list(prefixUri: string): AsyncIterable<StoredObject> {
    yield* (await this.backend()).list(prefixUri);
  }

  async head(uri: string): Promise<StoredObject | undefined> {
    return (await this.backend()).head(uri);
  }

  async read(uri: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    return (await this.backend()).read(uri, range, signal);
  }

  async readPooled(uri: string, range?: ByteRange, signal?: AbortSignal): Promise<PooledRead | undefined> {
    return (await this.backend()).readPooled?.(uri, range, signal);
  }

  async readAll(uri: string): Promise<Buffer> {
    return (await this.backend()).readAll(uri);
  }

  async put(uri: string, body: Buffer | string, opts?: WriterOptions): Promise<void> {
    return (await this.backend()).put(uri, body, opts);
  }

  async putIfAbsent(uri: string, body: Buffer | string, opts?: WriterOptions): Promise<boolean> {
    return (await this.backend()).putIfAbsent(uri, body, opts);
  }

  async deleteMany(uris: readonly string[]): Promise<void> {
    return (await this.backend()).deleteMany(uris);
  }

  createWriter(uri: string, opts?: WriterOptions): ObjectWriter {
    if (this.#loaded) return this.#loaded.createWriter(uri, opts);
    return new LazyWriter(
      uri,
      this.backend().then((b) => b.createWriter(uri, opts)),
    );
  }

  async concat(sources: readonly string[], target: string, opts?: WriterOptions): Promise<void> {
    return (await this.backend()).concat(sources, target, opts);
  }

  async delete(uri: string): Promise<void> {
    return (await this.backend()).delete(uri);
  }

  async *listIncompleteUploads(prefixUri: string): AsyncIterable<IncompleteUpload> {
    yield* (await this.backend()).listIncompleteUploads(prefixUri);
  }

  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    return (await this.backend()).abortIncompleteUpload(upload);
  }

  /** Closes the backend's connections if it was built, or as soon as it is. */
  destroy(): void {
    this.#destroyed = true;
    if (this.#loaded) destroyBackend(this.#loaded);
  }
}

function destroyBackend(b: Storage): void {
  (b as { destroy?: () => void }).destroy?.();
}

/** A writer of a backend still loading: every call waits for the real writer first. */
class LazyWriter implements ObjectWriter {
  #inner: ObjectWriter | undefined;

  constructor(
    readonly uri: string,
    private readonly inner: Promise<ObjectWriter>,
  ) {
    inner.then(
      (w) => {
        this.#inner = w;
      },
      () => {},
    );
  }

  get bytesWritten(): number {
    return this.#inner?.bytesWritten ?? 0;
  }

  /** The real writer's answer; a caller asks after a write has resolved, when it is known. */
  get releasesChunks(): boolean {
    return this.#inner?.releasesChunks ?? false;
  }

  async write(chunk: Buffer): Promise<void> {
    return (await this.inner).write(chunk);
  }

  async writeMany(chunks: readonly Buffer[]): Promise<void> {
    const w = await this.inner;
    if (w.writeMany) return w.writeMany(chunks);
    for (const chunk of chunks) await w.write(chunk);
  }

  async complete(): Promise<void> {
    return (await this.inner).complete();
  }

  /** Nothing was begun if the backend never loaded: aborting that is a no-op. */
  async abort(): Promise<void> {
    const w = await this.inner.catch(() => undefined);
    await w?.abort();
  }
}
