import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DataError } from './errors';

/**
 * Decompresses a gzip byte stream as it arrives (CompressionType Gzip: the object is decompressed
 * before splitting). Concatenated gzip members decompress as one stream, as gunzip(1) does. Corrupt
 * or truncated input becomes a DataError for the object; errors of the source itself pass through.
 * Ending the iteration early stops the source.
 *
 * An empty object (0 bytes) is not a gzip stream, strictly, but it holds no records whatever its
 * CompressionType, so it decompresses to nothing rather than failing: an empty object gets an empty
 * `.out` for every split type and compression.
 */
export async function* gunzip(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const gz = createGunzip();
  let sourceError: unknown;
  let compressedBytes = 0;
  const counted = (async function* () {
    for await (const chunk of source) {
      compressedBytes += chunk.length;
      yield chunk;
    }
  })();
  const input = Readable.from(counted, { objectMode: false });
  input.once('error', (e) => {
    sourceError = e;
  });
  pipeline(input, gz, () => {
    // Errors surface through the iteration below; pipeline only guarantees both ends are torn down.
  });
  let out = 0;
  try {
    for await (const chunk of gz as AsyncIterable<Buffer>) {
      out += chunk.length;
      yield chunk;
    }
  } catch (e) {
    if (sourceError !== undefined) throw sourceError;
    if (isZlibError(e) && compressedBytes === 0) return;
    if (isZlibError(e)) {
      throw new DataError(`the object is not valid gzip (${e.message}) after ${out} decompressed bytes`);
    }
    throw e;
  } finally {
    gz.destroy();
  }
}

/** zlib's own errors carry codes such as Z_DATA_ERROR ("incorrect header check") and Z_BUF_ERROR ("unexpected end of file"). */
function isZlibError(e: unknown): e is Error {
  const code = (e as { code?: unknown } | undefined)?.code;
  return e instanceof Error && typeof code === 'string' && code.startsWith('Z_');
}
