import type { ContentKind } from '../job/content-types';
import { csvFieldBounds, pickCsvFields, withoutCR } from './csv';
import { DataError } from './errors';
import { type ParsedPath, parseJsonPath, selectIndexes, selectJson } from './jsonpath';

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
    const value = parseJson(record, () => fail(offset, 'it is not valid JSON'));
    return Buffer.from(JSON.stringify(selectOrFail(parsed, value, (m) => fail(offset, m))) ?? 'null');
  };
}

export function parseJson(bytes: Buffer, onError: () => Error): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw onError();
  }
}

export function selectOrFail(path: ParsedPath, value: unknown, fail: (message: string) => Error): unknown {
  try {
    return selectJson(path, value);
  } catch (e) {
    throw fail((e as Error).message);
  }
}
