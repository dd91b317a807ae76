import { isUtf8 } from 'node:buffer';
import type { SliceEnd } from '../contract/job';
import type { ContentKind } from '../job/content-types';
import { csvFieldBounds, pickCsvFields, withoutCR } from './csv';
import { DataError } from './errors';
import { JsonTextError } from '../jsonpath/json-text';
import { JsonTextSelector, parseJsonPath, selectIndexes } from '../jsonpath/jsonpath';

/**
 * A compiled InputFilter or OutputFilter for one content kind: record bytes in, selected bytes out.
 * CSV rows select fields by position and JSON values by their spans in the record: either way what is
 * kept is the record's own text, byte for byte (see src/jsonpath/json-text.ts for why that matters).
 * `undefined` for `$` (the identity), so callers can skip the work entirely.
 */
export type RecordFilter = (record: Buffer, offset: number) => Buffer;

export function compileFilter(
  path: string | undefined,
  kind: ContentKind,
  field: 'InputFilter' | 'OutputFilter',
  sliceEnd: SliceEnd = 'Inclusive',
): RecordFilter | undefined {
  if (path === undefined || path === '' || path === '$') return undefined;
  if (kind === 'other') {
    throw new Error(`${field} applies to text/csv, application/json or application/jsonlines records`);
  }
  const parsed = parseJsonPath(path, { csv: kind === 'csv', sliceEnd });
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
  const selector = new JsonTextSelector(parsed);
  return (record, offset) =>
    selectText(
      selector,
      record,
      (why) => fail(offset, `it ${why}`),
      (m) => fail(offset, m),
    );
}

/**
 * Applies a JSON selector to one record's text. `onInvalid` words text that is not JSON (a reason that
 * follows a subject, as for `parseJson`), `onMismatch` a path that does not apply.
 */
export function selectText(
  selector: JsonTextSelector,
  text: Buffer,
  onInvalid: (why: string) => Error,
  onMismatch: (message: string) => Error,
): Buffer {
  checkUtf8(text, onInvalid);
  try {
    return selector.select(text);
  } catch (e) {
    if (e instanceof JsonTextError) throw onInvalid(`is not valid JSON (${e.message})`);
    throw onMismatch((e as Error).message);
  }
}

/**
 * JSON text is UTF-8 (RFC 8259 §8.1): bytes that are not would be decoded to U+FFFD and the record sent
 * on silently changed, so they are an error, like a syntax error.
 */
export function checkUtf8(bytes: Buffer, onError: (why: string) => Error): void {
  if (!isUtf8(bytes)) {
    throw onError(`is not valid UTF-8 (the first bad byte is byte ${firstInvalidUtf8(bytes)} of the record)`);
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
