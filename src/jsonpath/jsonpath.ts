/**
 * The JSONPath subset of InputFilter / OutputFilter (REFERENCE.md "Filters"):
 *
 *   $                    the whole record
 *   .name  ['name']      a child by name (letters, digits, `_` and `-` after a dot; anything quoted)
 *   ['a','b']            several children: the result is an object with those keys, in that order
 *   .*  [*]              every child: an array stays an array, an object stays an object
 *   [2]  [-1]            one element (negative counts from the end)
 *   [0,2]  [1:]  [0:2,5:]  [::2]
 *                        elements by index and slice, in the order listed; several ranges allowed
 *
 * Slice ends are inclusive by default, as SageMaker's developer guide describes them ("`$[1:4]`
 * specifies the second through fifth columns",
 * https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html): [0:2] is
 * elements 0, 1 and 2. `sliceEnd: 'Exclusive'` (Extensions.JsonPathSliceEnd) reads them half-open,
 * as Python and RFC 9535 do (docs/DATA-PLANE.md). The parsed form always holds exclusive ends. A selection that names an
 * index or key that is not there is an error (SageMaker: "If you specify indexes that aren't within
 * the dimension size of the joined dataset, you get an error"); slices clamp like Python's.
 *
 * A segment that selects one value (one name or one index) yields that value; any other segment
 * yields a collection, and the segments after it apply to each member.
 */

import { JsonKind, JsonTape, kindName } from './json-text';

export type Selector =
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'index'; readonly index: number }
  | { readonly kind: 'slice'; readonly start?: number; readonly end?: number; readonly step: number }
  | { readonly kind: 'wildcard' };

export interface Segment {
  readonly selectors: readonly Selector[];
  /** Exactly one name or one index: the segment yields a value, not a collection. */
  readonly single: boolean;
}

export interface ParsedPath {
  readonly source: string;
  readonly segments: readonly Segment[];
  /** `$`: selects the record as it is. */
  readonly identity: boolean;
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_-]/;

/**
 * Parses a filter. Throws an Error whose message says what is wrong and where (without repeating the
 * path, which the caller shows). With `csv`, only index forms in one bracket are accepted.
 */
export function parseJsonPath(
  path: string,
  opts: { readonly csv: boolean; readonly sliceEnd?: 'Inclusive' | 'Exclusive' },
): ParsedPath {
  const p = new Parser(path, (opts.sliceEnd ?? 'Inclusive') === 'Inclusive');
  const segments = p.parse();
  if (opts.csv) {
    if (segments.length > 1) {
      throw new Error(
        'a CSV row has one level: use one bracket of indexes and slices such as $[0,2] or $[1:]',
      );
    }
    const bad = segments[0]?.selectors.find((s) => s.kind === 'name' || s.kind === 'wildcard');
    if (bad) {
      throw new Error(
        `CSV rows take index forms only (such as $[1:] or $[0,2]); ${bad.kind === 'name' ? `the name '${bad.name}'` : '*'} cannot select CSV fields`,
      );
    }
  }
  return { source: path, segments, identity: segments.length === 0 };
}

class Parser {
  private i = 0;

  constructor(
    private readonly s: string,
    /** Slice ends count the element they name (SageMaker's reading); stored as exclusive ends. */
    private readonly inclusiveEnds: boolean,
  ) {}

  parse(): Segment[] {
    const s = this.s;
    if (s.length === 0) throw new Error('a JSONPath must start with $');
    if (s[0] !== '$') throw new Error(`a JSONPath must start with $, found '${s[0]}'`);
    this.i = 1;
    const segments: Segment[] = [];
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === '.') {
        this.i++;
        segments.push(this.dotSegment());
      } else if (c === '[') {
        this.i++;
        segments.push(this.bracketSegment());
      } else {
        throw this.error(`unexpected '${c}'; expected '.' or '['`);
      }
    }
    return segments;
  }

  private dotSegment(): Segment {
    const s = this.s;
    const c = s[this.i];
    if (c === '.') throw this.error('recursive descent (..) is not supported');
    if (c === '*') {
      this.i++;
      return { selectors: [{ kind: 'wildcard' }], single: false };
    }
    if (c === undefined || !NAME_START.test(c)) {
      throw this.error(`expected a name after '.' (letters, digits, _ or -), or use ['...'] for other names`);
    }
    const start = this.i;
    while (this.i < s.length && NAME_CHAR.test(s[this.i]!)) this.i++;
    return { selectors: [{ kind: 'name', name: s.slice(start, this.i) }], single: true };
  }

  private bracketSegment(): Segment {
    const selectors: Selector[] = [];
    for (;;) {
      this.spaces();
      selectors.push(this.selector());
      this.spaces();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === ']') {
        this.i++;
        break;
      }
      throw this.error(c === undefined ? "missing ']'" : `unexpected '${c}'; expected ',' or ']'`);
    }
    const kinds = new Set(selectors.map((x) => (x.kind === 'slice' ? 'index' : x.kind)));
    if (kinds.has('wildcard') && selectors.length > 1) throw this.error('* must stand alone in its brackets');
    if (kinds.has('name') && kinds.has('index'))
      throw this.error('names and indexes cannot be mixed in one bracket');
    const single =
      selectors.length === 1 && (selectors[0]!.kind === 'name' || selectors[0]!.kind === 'index');
    return { selectors, single };
  }

  private selector(): Selector {
    const c = this.s[this.i];
    if (c === '*') {
      this.i++;
      return { kind: 'wildcard' };
    }
    if (c === "'" || c === '"') return { kind: 'name', name: this.quoted(c) };
    if (c === '?') throw this.error('filter expressions ([?(...)]) are not supported');
    if (c === '(') throw this.error('script expressions ([(...)]) are not supported');
    if (c === '@')
      throw this.error(
        '@ (the current node) is only meaningful in filter expressions, which are not supported',
      );
    const start = this.int();
    if (this.s[this.i] !== ':') {
      if (start === undefined) {
        throw this.error(
          c === undefined ? "missing ']'" : c === ']' ? 'empty brackets' : `unexpected '${c}' in brackets`,
        );
      }
      return { kind: 'index', index: start };
    }
    this.i++;
    const end = this.int();
    let step = 1;
    if (this.s[this.i] === ':') {
      this.i++;
      const st = this.int();
      if (st !== undefined) {
        if (st <= 0) throw this.error('a slice step must be a positive integer');
        step = st;
      }
    }
    // An inclusive end e is the exclusive end e + 1; -1 (the last element) is then "to the end".
    const exclusiveEnd = end === undefined || !this.inclusiveEnds ? end : end === -1 ? undefined : end + 1;
    return { kind: 'slice', start, end: exclusiveEnd, step };
  }

  private int(): number | undefined {
    this.spaces();
    const m = /^-?\d+/.exec(this.s.slice(this.i));
    if (!m) return undefined;
    const n = Number(m[0]);
    if (!Number.isSafeInteger(n)) throw this.error(`index ${m[0]} is too large`);
    this.i += m[0].length;
    this.spaces();
    return n;
  }

  private quoted(q: string): string {
    const s = this.s;
    let out = '';
    this.i++;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === q) {
        this.i++;
        return out;
      }
      if (c === '\\' && this.i + 1 < s.length) {
        out += s[this.i + 1];
        this.i += 2;
        continue;
      }
      out += c;
      this.i++;
    }
    throw this.error(`unterminated quoted name (missing ${q})`);
  }

  private spaces(): void {
    while (this.s[this.i] === ' ') this.i++;
  }

  private error(message: string): Error {
    return new Error(`${message} at character ${Math.min(this.i, this.s.length) + 1}`);
  }
}

/**
 * Calls `each` with the position of every element a segment of indexes and slices selects from
 * `length` elements, in order. Out-of-range indexes fail; slices clamp like Python's. One
 * implementation for CSV fields and JSON array elements; it allocates nothing.
 */
export function forEachIndex(
  segment: Segment,
  length: number,
  each: (i: number) => void,
  what = 'items',
): void {
  for (const sel of segment.selectors) {
    if (sel.kind === 'index') {
      const i = sel.index < 0 ? length + sel.index : sel.index;
      if (i < 0 || i >= length) throw new Error(`index ${sel.index} is out of range for ${length} ${what}`);
      each(i);
    } else if (sel.kind === 'slice') {
      const end = bound(sel.end, length, length);
      for (let i = bound(sel.start, 0, length); i < end; i += sel.step) each(i);
    } else {
      throw new Error(`${sel.kind} selectors do not select by position`);
    }
  }
}

const bound = (x: number | undefined, dflt: number, length: number) =>
  x === undefined ? dflt : x < 0 ? Math.max(0, length + x) : Math.min(x, length);

/** Positions of the elements a segment of indexes and slices selects from `length` elements, in order. */
export function selectIndexes(segment: Segment, length: number, what = 'items'): number[] {
  const out: number[] = [];
  forEachIndex(segment, length, (i) => out.push(i), what);
  return out;
}

const OPEN_ARRAY = Buffer.from('[');
const CLOSE_ARRAY = Buffer.from(']');
const OPEN_OBJECT = Buffer.from('{');
const CLOSE_OBJECT = Buffer.from('}');
const COMMA = Buffer.from(',');
const COLON = Buffer.from(':');

/**
 * Applies a parsed path to JSON text and returns the selection as JSON text made of the record's own
 * bytes: a selected value is copied exactly as written (numbers, escapes, whitespace inside it), and
 * a collection is written compactly around them, member names as written in the record. Throws
 * JsonTextError for text that is not JSON, and Error saying which step did not apply.
 *
 * Reuses one tape and one list of pieces per selector; not re-entrant (filters run synchronously).
 */
export class JsonTextSelector {
  private readonly tape = new JsonTape();
  private readonly parts: Buffer[] = [];
  private readonly names: Map<string, Buffer> = new Map();

  constructor(readonly path: ParsedPath) {
    for (const seg of path.segments)
      for (const sel of seg.selectors)
        if (sel.kind === 'name') this.names.set(sel.name, Buffer.from(sel.name, 'utf8'));
  }

  /** The selection of `text` (a view of `text` when it is one value, else a new Buffer). */
  select(text: Buffer): Buffer {
    const tape = this.tape;
    tape.scan(text);
    this.cursorArray = -1;
    const parts = this.parts;
    parts.length = 0;
    try {
      this.apply(0, 0);
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    } finally {
      parts.length = 0;
    }
  }

  private apply(k: number, e: number): void {
    const { tape, parts } = this;
    const segments = this.path.segments;
    if (k === segments.length) {
      parts.push(tape.bytes(e));
      return;
    }
    const seg = segments[k]!;
    const first = seg.selectors[0]!;
    const kind = tape.kind(e);
    if (seg.single) {
      if (first.kind === 'name') {
        this.apply(k + 1, this.child(e, first.name) + 1);
        return;
      }
      if (kind !== JsonKind.Array)
        throw new Error(`[${(first as { index: number }).index}] needs an array, found ${kindName(kind)}`);
      forEachIndex(seg, tape.count(e), (i) => this.apply(k + 1, this.element(e, i)));
      return;
    }
    if (first.kind === 'wildcard') {
      if (kind === JsonKind.Array) {
        parts.push(OPEN_ARRAY);
        for (let i = 0, v = e + 1; i < tape.count(e); i++, v = tape.next(v)) {
          if (i > 0) parts.push(COMMA);
          this.apply(k + 1, v);
        }
        parts.push(CLOSE_ARRAY);
      } else if (kind === JsonKind.Object) {
        parts.push(OPEN_OBJECT);
        for (let i = 0, key = e + 1; i < tape.count(e); i++, key = tape.next(key + 1)) {
          if (i > 0) parts.push(COMMA);
          parts.push(tape.bytes(key), COLON);
          this.apply(k + 1, key + 1);
        }
        parts.push(CLOSE_OBJECT);
      } else {
        throw new Error(`* needs an object or an array, found ${kindName(kind)}`);
      }
      return;
    }
    if (first.kind === 'name') {
      parts.push(OPEN_OBJECT);
      for (let i = 0; i < seg.selectors.length; i++) {
        if (i > 0) parts.push(COMMA);
        const key = this.child(e, (seg.selectors[i] as { name: string }).name);
        parts.push(tape.bytes(key), COLON);
        this.apply(k + 1, key + 1);
      }
      parts.push(CLOSE_OBJECT);
      return;
    }
    if (kind !== JsonKind.Array)
      throw new Error(`index and slice selections need an array, found ${kindName(kind)}`);
    parts.push(OPEN_ARRAY);
    let n = 0;
    forEachIndex(seg, tape.count(e), (i) => {
      if (n++ > 0) parts.push(COMMA);
      this.apply(k + 1, this.element(e, i));
    });
    parts.push(CLOSE_ARRAY);
  }

  /** The key entry of member `name` of object e (the last one, as JSON.parse keeps, when repeated). */
  private child(e: number, name: string): number {
    const tape = this.tape;
    const kind = tape.kind(e);
    if (kind !== JsonKind.Object) throw new Error(`'${name}' needs an object, found ${kindName(kind)}`);
    const bytes = this.names.get(name)!;
    let found = -1;
    for (let i = 0, key = e + 1; i < tape.count(e); i++, key = tape.next(key + 1))
      if (tape.keyIs(key, name, bytes)) found = key;
    if (found < 0) throw new Error(`no key '${name}' in the object`);
    return found;
  }

  /** Cursor over the last array walked, so slices and increasing index lists walk it once. */
  private cursorArray = -1;
  private cursorIndex = 0;
  private cursorEntry = 0;

  /** The entry of element i of array e. */
  private element(e: number, i: number): number {
    const tape = this.tape;
    if (this.cursorArray !== e || this.cursorIndex > i) {
      this.cursorArray = e;
      this.cursorIndex = 0;
      this.cursorEntry = e + 1;
    }
    while (this.cursorIndex < i) {
      this.cursorEntry = tape.next(this.cursorEntry);
      this.cursorIndex++;
    }
    return this.cursorEntry;
  }
}
