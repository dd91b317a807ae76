import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DataError } from '../../src/dataplane/errors';
import { gunzip } from '../../src/dataplane/gzip';
import { readMiniBatches } from '../../src/dataplane/input';
import { buffered, CSV_LINE, chunked, collect, rejection } from './helpers';

const text = async (src: AsyncIterable<Buffer>) => Buffer.concat(await collect(gunzip(src))).toString();

describe('gzip', () => {
  it('decompresses as the chunks arrive, at any chunk size', async () => {
    const data = 'line one\nline two\n'.repeat(500);
    for (const size of [1, 7, 100, 65536]) expect(await text(chunked(gzipSync(data), size))).toBe(data);
  });

  it('decompresses concatenated gzip members as one stream', async () => {
    expect(await text(chunked(Buffer.concat([gzipSync('a\n'), gzipSync('b\n')]), 5))).toBe('a\nb\n');
  });

  it.each([
    ['plain text', Buffer.from('id,x\n1,2\n')],
    ['a truncated stream', gzipSync('hello world '.repeat(100)).subarray(0, 40)],
    ['trailing garbage', Buffer.concat([gzipSync('a'), Buffer.from('not gzip')])],
    ['a gzip header and nothing else', gzipSync('abc').subarray(0, 10)],
  ])('fails %s as an object that is not valid gzip', async (_name, bytes) => {
    const e = await rejection(collect(gunzip(chunked(bytes, 16))));
    expect(e).toBeInstanceOf(DataError);
    expect(e.message).toMatch(/^the object is not valid gzip \(/);
  });

  it('decompresses an empty object (0 bytes) to nothing: it holds no records, like an empty plain object', async () => {
    expect(await collect(gunzip(chunked(Buffer.alloc(0), 16)))).toEqual([]);
    expect(await collect(gunzip((async function* () {})()))).toEqual([]);
  });

  it('passes an error of the source through unchanged', async () => {
    const boom = new Error('connection reset');
    const source = async function* () {
      yield gzipSync('abc').subarray(0, 5);
      throw boom;
    };
    expect(await rejection(collect(gunzip(source())))).toBe(boom);
  });

  it('feeds the splitter when CompressionType is Gzip', async () => {
    const batches = buffered(
      await collect(
        readMiniBatches(chunked(gzipSync('1,a\n2,b\n'), 3), { ...CSV_LINE, compressionType: 'Gzip' }),
      ),
    );
    expect(batches.map((b) => b.body.toString())).toEqual(['1,a\n2,b']);
  });
});
