import { isUtf8 } from 'node:buffer';
import type { ContentKind } from '../job/content-types';
import { csvFieldBounds, pickCsvFields, withoutCR } from './csv';
import { DataError } from './errors';
import { type ParsedPath, parseJsonPath, selectIndexes, selectJson } from '../jsonpath/jsonpath';

/**
 * A compiled InputFilter or OutputFilter for one content kind: record bytes in, selected bytes out.
 * CSV rows select fields by position and keep their exact text; JSON values are parsed, selected and
 * serialized compactly. `undefined` for `$` (the identity), so callers can skip the work entirely.
 */
export type RecordFilter = (record: Buffer, offset: number) => Buffer;

export function compileFilter(
  path: string | undefined,
  kind: ContentKind,
  field: 'InputFilter' | 'OutputFilter',
): RecordFilter | undefined {
  if (path === undefined || path === '' || path === '$') return undefined;
  if (kind === 'other') {
    throw new Error(`${field} applies to text/csv, application/json or application/jsonlines records`);
  }
  const parsed = parseJsonPath(path, { csv: kind === 'csv' });
  if (parsed.identity) return undefined;
  const fail = (offset: number, what: string) =>
    new DataError(`${field} ${path} cannot apply to the record at byte offset ${offset}: ${what}`, offset);
  if (kind === 'csv') {
    const segment = parsed.segments[0]!;
    return (record, offset) => {
      const row = withoutCR(record);
      const bounds = csvFieldBounds(row);
      let fields: number[];
      try {
        fields = selectIndexes(segment, bounds.length / 2, 'fields');
      } catch (e) {
        throw fail(offset, (e as Error).message);
      }
      return pickCsvFields(row, bounds, fields);
    };
  }
  return (record, offset) => {
    const value = parseJson(record, (why) => fail(offset, `it ${why}`));
    return Buffer.from(JSON.stringify(selectOrFail(parsed, value, (m) => fail(offset, m))) ?? 'null');
  };
}

/**
 * Parses one JSON record. JSON text is UTF-8 (RFC 8259 §8.1): bytes that are not would be decoded to
 * U+FFFD and the record sent on silently changed, so they are an error, like a syntax error.
 * `onError` gets the reason, worded to follow a subject: "is not valid UTF-8 (…)", "is not valid JSON (…)".
 */
export function parseJson(bytes: Buffer, onError: (why: string) => Error): unknown {
  if (!isUtf8(bytes)) {
    throw onError(`is not valid UTF-8 (the first bad byte is byte ${firstInvalidUtf8(bytes)} of the record)`);
  }
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw onError(`is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Index of the first byte that starts no valid UTF-8 sequence (RFC 3629 table 3-7). Hand-written
 * because nothing built in says where a decode fails; it runs only to word an error.
 */
export function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return b.length;
}

export function selectOrFail(path: ParsedPath, value: unknown, fail: (message: string) => Error): unknown {
  try {
    return selectJson(path, value);
  } catch (e) {
    throw fail((e as Error).message);
  }
}
