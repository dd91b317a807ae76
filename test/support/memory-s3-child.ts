/**
 * The in-memory S3 server (memory-s3.ts) in a process of its own, for measurements whose memory and
 * CPU figures must not include the server's: `startMemoryS3Process()` forks this file, which answers
 * with its endpoint and then seeds objects on request (over the IPC channel, no HTTP).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { DEFAULT_MAX_ATTEMPTS } from '../../src/storage/s3';
import { startMemoryS3 } from './memory-s3';

/** `count` keys `<prefix><zero-padded i>` of `size(i)` zero bytes: `size` is `base + (i % spread)`. */
export interface SeedRequest {
  readonly bucket: string;
  readonly prefix: string;
  readonly count: number;
  readonly baseSize: number;
  readonly spread?: number;
  readonly suffix?: string;
}

export interface MemoryS3Process {
  readonly endpoint: string;
  readonly clientConfig: S3ClientConfig;
  seed(request: SeedRequest): Promise<void>;
  /** Incomplete multipart uploads in `bucket` under `prefix`. */
  incompleteUploads(bucket: string, prefix?: string): Promise<number>;
  stop(): Promise<void>;
}

const SELF = fileURLToPath(import.meta.url);

export async function startMemoryS3Process(buckets: readonly string[]): Promise<MemoryS3Process> {
  const child: ChildProcess = fork(SELF, ['--serve', JSON.stringify(buckets)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 0;
  const pending = new Map<number, (value: unknown) => void>();
  const ready = new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`memory S3 process exited (code ${code})`)));
    child.on('message', (m: { endpoint?: string; id?: number; value?: unknown }) => {
      if (m.endpoint) resolve(m.endpoint);
      else if (m.id !== undefined) {
        pending.get(m.id)?.(m.value);
        pending.delete(m.id);
      }
    });
  });
  const call = (message: object) =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      child.send({ ...message, id });
    });
  const endpoint = await ready;
  return {
    endpoint,
    clientConfig: {
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'memory', secretAccessKey: 'memory' },
      forcePathStyle: true,
      retryMode: 'standard',
      maxAttempts: DEFAULT_MAX_ATTEMPTS,
    },
    seed: async (request) => void (await call({ seed: request })),
    incompleteUploads: async (bucket, prefix) => (await call({ uploads: { bucket, prefix } })) as number,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.disconnect();
      await exited;
    },
  };
}

export const memoryS3Client = (p: MemoryS3Process) => new S3Client(p.clientConfig);

if (process.argv[2] === '--serve') {
  const s3 = await startMemoryS3({ buckets: JSON.parse(process.argv[3]!) as string[] });
  process.on('disconnect', () => void s3.stop().then(() => process.exit(0)));
  process.on(
    'message',
    (m: { id: number; seed?: SeedRequest; uploads?: { bucket: string; prefix?: string } }) => {
      if (m.seed) {
        const { bucket, prefix, count, baseSize, spread = 1, suffix = '' } = m.seed;
        const width = String(count - 1).length;
        s3.seed(
          bucket,
          (function* () {
            for (let i = 0; i < count; i++) {
              yield [
                `${prefix}${String(i).padStart(width, '0')}${suffix}`,
                { size: baseSize + (i % spread) },
              ] as const;
            }
          })(),
        );
        process.send!({ id: m.id, value: null });
      } else if (m.uploads) {
        process.send!({ id: m.id, value: s3.incompleteUploads(m.uploads.bucket, m.uploads.prefix) });
      }
    },
  );
  process.send!({ endpoint: s3.endpoint });
}
