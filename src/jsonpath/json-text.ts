/**
 * JSON text as spans of its own bytes. Filters and joins select and copy values by their byte
 * ranges in the record, never by `JSON.parse` then `JSON.stringify`: a round trip through JavaScript
 * values rewrites what users carry through a job (12345678901234567891 becomes 12345678901234567000,
 * 9007199254740993 becomes 9007199254740992, 1.50 becomes 1.5, 1e2 becomes 100, `\u00e9` becomes é).
 *
 * Hand-written rather than a library because it runs once per record on the hot path: one pass over
 * the bytes validates the text (RFC 8259, as strictly as JSON.parse) and writes a flat "tape" of the
 * values it found into a reused Int32Array, so scanning a record allocates nothing per value. No
 * recursion, so nesting depth is limited only by memory, as with JSON.parse.
 *
 * Tape entries are STRIDE int32s: kind, start, end (the value's bytes are [start, end)), next (the
 * entry after this value's subtree, to skip it) and count (members of an object, elements of an
 * array). An object's members follow it as key entry then value entry.
 */

export const JsonKind = {
  Object: 1,
  Array: 2,
  String: 3,
  Number: 4,
  True: 5,
  False: 6,
  Null: 7,
  /** A member name without escapes: compare its bytes. */
  Key: 8,
  /** A member name with `\` escapes: decode it to compare. */
  EscapedKey: 9,
} as const;
export type JsonKind = (typeof JsonKind)[keyof typeof JsonKind];

const STRIDE = 5;
const KIND = 0;
const START = 1;
const END = 2;
const NEXT = 3;
const COUNT = 4;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;

/** A syntax error in JSON text, with the byte offset in the scanned text. */
export class JsonTextError extends Error {}

/** A reusable tape: `scan` one text, read its entries, scan the next. Not re-entrant. */
export class JsonTape {
  private tape = new Int32Array(64 * STRIDE);
  private n = 0;
  private stack = new Int32Array(16);
  /** The text last scanned. */
  buf: Buffer = Buffer.alloc(0);

  /** Scans `buf` (one JSON value with optional surrounding whitespace); the root is entry 0. */
  scan(buf: Buffer): void {
    this.buf = buf;
    this.n = 0;
    let depth = 0;
    let pos = ws(buf, 0);
    for (;;) {
      // A value starts at pos.
      const c = buf[pos];
      if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        const e = this.push(c === 0x7b ? JsonKind.Object : JsonKind.Array, pos, 0);
        if (depth === this.stack.length) {
          const bigger = new Int32Array(depth * 2);
          bigger.set(this.stack);
          this.stack = bigger;
        }
        this.stack[depth++] = e;
        pos = ws(buf, pos + 1);
        const close = c === 0x7b ? 0x7d : 0x5d;
        if (buf[pos] === close) {
          pos++;
          this.close(e, pos);
          depth--;
        } else {
          this.tape[e * STRIDE + COUNT] = 1;
          if (c === 0x7b) pos = this.memberName(buf, pos);
          continue;
        }
      } else {
        pos = this.scalar(buf, pos);
      }
      // After a value: close containers or move to the next member or element.
      for (;;) {
        if (depth === 0) {
          pos = ws(buf, pos);
          if (pos !== buf.length) throw unexpected(buf, pos, 'after the end of the value');
          return;
        }
        const top = this.stack[depth - 1]!;
        const isObject = this.tape[top * STRIDE + KIND] === JsonKind.Object;
        pos = ws(buf, pos);
        const d = buf[pos];
        if (d === COMMA) {
          this.tape[top * STRIDE + COUNT]!++;
          pos = ws(buf, pos + 1);
          if (isObject) pos = this.memberName(buf, pos);
          break;
        }
        if (d === (isObject ? 0x7d : 0x5d)) {
          pos++;
          this.close(top, pos);
          depth--;
          continue;
        }
        throw unexpected(buf, pos, isObject ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
  }

  kind(e: number): JsonKind {
    return this.tape[e * STRIDE + KIND]! as JsonKind;
  }
  start(e: number): number {
    return this.tape[e * STRIDE + START]!;
  }
  end(e: number): number {
    return this.tape[e * STRIDE + END]!;
  }
  /** The entry after e's subtree. */
  next(e: number): number {
    return this.tape[e * STRIDE + NEXT]!;
  }
  /** Members of an object, elements of an array. */
  count(e: number): number {
    return this.tape[e * STRIDE + COUNT]!;
  }
  /** The bytes of entry e, as written (a view of the scanned text, not a copy). */
  bytes(e: number): Buffer {
    return this.buf.subarray(this.start(e), this.end(e));
  }

  /** Whether key entry k names `name` (`nameBytes` is its UTF-8). */
  keyIs(k: number, name: string, nameBytes: Buffer): boolean {
    const s = this.start(k) + 1;
    const e = this.end(k) - 1;
    if (this.kind(k) === JsonKind.Key) {
      return e - s === nameBytes.length && this.buf.compare(nameBytes, 0, nameBytes.length, s, e) === 0;
    }
    return JSON.parse(this.buf.toString('utf8', s - 1, e + 1)) === name;
  }

  private push(kind: JsonKind, start: number, end: number): number {
    const e = this.n++;
    if (this.n * STRIDE > this.tape.length) {
      const bigger = new Int32Array(this.tape.length * 2);
      bigger.set(this.tape);
      this.tape = bigger;
    }
    const t = this.tape;
    const o = e * STRIDE;
    t[o + KIND] = kind;
    t[o + START] = start;
    t[o + END] = end;
    t[o + NEXT] = e + 1;
    t[o + COUNT] = 0;
    return e;
  }

  private close(e: number, end: number): void {
    this.tape[e * STRIDE + END] = end;
    this.tape[e * STRIDE + NEXT] = this.n;
  }

  /** A member name and its colon at pos; returns where the member's value starts. */
  private memberName(buf: Buffer, pos: number): number {
    if (buf[pos] !== QUOTE) throw unexpected(buf, pos, 'expected a member name in double quotes');
    const end = stringEnd(buf, pos);
    this.push(lastStringEscaped ? JsonKind.EscapedKey : JsonKind.Key, pos, end);
    pos = ws(buf, end);
    if (buf[pos] !== COLON) throw unexpected(buf, pos, "expected ':'");
    return ws(buf, pos + 1);
  }

  /** A string, number or literal at pos; returns its end. */
  private scalar(buf: Buffer, pos: number): number {
    const c = buf[pos];
    let end: number;
    let kind: JsonKind;
    if (c === QUOTE) {
      end = stringEnd(buf, pos);
      kind = JsonKind.String;
    } else if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) {
      end = numberEnd(buf, pos);
      kind = JsonKind.Number;
    } else if (c === 0x74 && literal(buf, pos, 'true')) {
      end = pos + 4;
      kind = JsonKind.True;
    } else if (c === 0x66 && literal(buf, pos, 'false')) {
      end = pos + 5;
      kind = JsonKind.False;
    } else if (c === 0x6e && literal(buf, pos, 'null')) {
      end = pos + 4;
      kind = JsonKind.Null;
    } else {
      throw unexpected(buf, pos, 'expected a value');
    }
    this.push(kind, pos, end);
    return end;
  }
}

function ws(buf: Buffer, pos: number): number {
  const n = buf.length;
  for (; pos < n; ) {
    const c = buf[pos];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return pos;
    pos++;
  }
  return pos;
}

function literal(buf: Buffer, pos: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (buf[pos + k] !== word.charCodeAt(k)) return false;
  return true;
}

const isDigit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39;
const isHex = (c: number | undefined) =>
  c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));

/** Whether the string stringEnd last scanned holds escapes (a variable, not a returned pair: no garbage). */
let lastStringEscaped = false;

/** End of the string starting at the quote at pos; sets lastStringEscaped. */
function stringEnd(buf: Buffer, pos: number): number {
  let escaped = false;
  let i = pos + 1;
  const n = buf.length;
  for (;;) {
    if (i >= n) throw new JsonTextError(`unterminated string starting at byte ${pos}`);
    const c = buf[i]!;
    if (c === QUOTE) {
      lastStringEscaped = escaped;
      return i + 1;
    }
    if (c < 0x20) throw unexpected(buf, i, 'control characters must be escaped in strings');
    if (c === BACKSLASH) {
      escaped = true;
      const d = buf[i + 1];
      if (d === 0x75 /* u */) {
        for (let k = 2; k < 6; k++) if (!isHex(buf[i + k])) throw unexpected(buf, i + k, 'bad \\u escape');
        i += 6;
        continue;
      }
      // " \ / b f n r t
      if (
        d !== QUOTE &&
        d !== BACKSLASH &&
        d !== 0x2f &&
        d !== 0x62 &&
        d !== 0x66 &&
        d !== 0x6e &&
        d !== 0x72 &&
        d !== 0x74
      ) {
        throw unexpected(buf, i + 1, 'bad escape');
      }
      i += 2;
      continue;
    }
    i++;
  }
}

/** RFC 8259 number: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
function numberEnd(buf: Buffer, pos: number): number {
  let i = pos;
  if (buf[i] === 0x2d) i++;
  if (buf[i] === 0x30) i++;
  else if (isDigit(buf[i])) while (isDigit(buf[i])) i++;
  else throw unexpected(buf, i, 'expected a digit');
  if (buf[i] === 0x2e) {
    i++;
    if (!isDigit(buf[i])) throw unexpected(buf, i, "expected a digit after '.'");
    while (isDigit(buf[i])) i++;
  }
  if (buf[i] === 0x65 || buf[i] === 0x45) {
    i++;
    if (buf[i] === 0x2b || buf[i] === 0x2d) i++;
    if (!isDigit(buf[i])) throw unexpected(buf, i, 'expected a digit in the exponent');
    while (isDigit(buf[i])) i++;
  }
  return i;
}

function unexpected(buf: Buffer, pos: number, what: string): JsonTextError {
  if (pos >= buf.length) return new JsonTextError(`unexpected end of text at byte ${pos}: ${what}`);
  const c = buf[pos]!;
  const shown =
    c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`;
  return new JsonTextError(`unexpected ${shown} at byte ${pos}: ${what}`);
}

/** How an error names a value's kind: "an object", "a number", "null". */
export function kindName(kind: JsonKind): string {
  switch (kind) {
    case JsonKind.Object:
      return 'an object';
    case JsonKind.Array:
      return 'an array';
    case JsonKind.String:
      return 'a string';
    case JsonKind.Number:
      return 'a number';
    case JsonKind.True:
    case JsonKind.False:
      return 'a boolean';
    default:
      return 'null';
  }
}
