/**
 * CSV rows for filters and joins, on bytes. Fields keep their exact text (quotes included), so
 * selecting fields never re-quotes or re-encodes anything.
 */

const COMMA = 44;
const QUOTE = 34;
const CR = 13;

/** A line without the `\r` of a CRLF ending: filters and joins treat it as part of the line end. */
export function withoutCR(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
}

/**
 * Field bounds of one CSV row as a flat list [start0, end0, start1, end1, ...]. RFC 4180: a field that
 * starts with `"` runs to the matching closing quote (`""` is an escaped quote), so commas and newlines
 * inside it do not split it. An unterminated quote runs to the end of the row.
 */
export function csvFieldBounds(row: Buffer): number[] {
  const out: number[] = [];
  let i = 0;
  for (;;) {
    let searchFrom = i;
    if (row[i] === QUOTE) {
      let j = i + 1;
      for (;;) {
        const q = row.indexOf(QUOTE, j);
        if (q < 0) {
          searchFrom = row.length;
          break;
        }
        if (row[q + 1] === QUOTE) {
          j = q + 2;
          continue;
        }
        searchFrom = q + 1;
        break;
      }
    }
    const c = row.indexOf(COMMA, searchFrom);
    if (c < 0) {
      out.push(i, row.length);
      return out;
    }
    out.push(i, c);
    i = c + 1;
  }
}

/** The row made of the given fields (by position, in order), joined with commas. */
export function pickCsvFields(row: Buffer, bounds: readonly number[], fields: readonly number[]): Buffer {
  const parts: Buffer[] = [];
  for (let k = 0; k < fields.length; k++) {
    if (k > 0) parts.push(COMMA_BYTES);
    const f = fields[k]!;
    parts.push(row.subarray(bounds[2 * f]!, bounds[2 * f + 1]!));
  }
  return Buffer.concat(parts);
}

const COMMA_BYTES = Buffer.from(',');
