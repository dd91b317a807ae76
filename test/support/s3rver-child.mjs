// Runs s3rver in its own process. It must be started with `--openssl-legacy-provider`: s3rver signs
// ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers through its legacy provider,
// and Node 20 can load providers only at start-up (no in-process switch exists).
// Argument: JSON `{ "directory": "...", "buckets": ["..."] }`. Replies over IPC with `{ port }`.
import S3rver from 's3rver';

const { directory, buckets } = JSON.parse(process.argv[2]);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory,
  silent: true,
  configureBuckets: buckets.map((name) => ({ name })),
});
const { port } = await server.run();
process.send({ port });
// The parent owns this process: when it goes away (stop(), or a test worker that crashed) so do we.
process.on('disconnect', () => process.exit(0));
