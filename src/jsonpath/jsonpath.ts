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
 * Slices are half-open like Python's and RFC 9535's: [0:2] is elements 0 and 1. SageMaker's guide
 * describes inclusive ends, which nothing confirms and no other JSONPath dialect uses; we keep the one
 * meaning users of JSONPath and Python already know (docs/DATA-PLANE.md). A selection that names an
 * index or key that is not there is an error (SageMaker: "If you specify indexes that aren't within
 * the dimension size of the joined dataset, you get an error"); slices clamp like Python's.
 *
 * A segment that selects one value (one name or one index) yields that value; any other segment
 * yields a collection, and the segments after it apply to each member.
 */

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
export function parseJsonPath(path: string, opts: { readonly csv: boolean }): ParsedPath {
  const p = new Parser(path);
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

  constructor(private readonly s: string) {}

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
    return { kind: 'slice', start, end, step };
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

/** Positions of the elements a segment of indexes and slices selects from `length` elements, in order. */
export function selectIndexes(segment: Segment, length: number, what = 'items'): number[] {
  const out: number[] = [];
  for (const sel of segment.selectors) {
    if (sel.kind === 'index') {
      const i = sel.index < 0 ? length + sel.index : sel.index;
      if (i < 0 || i >= length) throw new Error(`index ${sel.index} is out of range for ${length} ${what}`);
      out.push(i);
    } else if (sel.kind === 'slice') {
      const bound = (x: number | undefined, dflt: number) =>
        x === undefined ? dflt : x < 0 ? Math.max(0, length + x) : Math.min(x, length);
      const end = bound(sel.end, length);
      for (let i = bound(sel.start, 0); i < end; i += sel.step) out.push(i);
    } else {
      throw new Error(`${sel.kind} selectors do not select by position`);
    }
  }
  return out;
}

/** Applies a parsed path to a JSON value. Throws an Error saying which step did not apply. */
export function selectJson(path: ParsedPath, value: unknown): unknown {
  return apply(path.segments, 0, value);
}

function apply(segments: readonly Segment[], k: number, v: unknown): unknown {
  if (k === segments.length) return v;
  const seg = segments[k]!;
  const first = seg.selectors[0]!;
  if (seg.single) {
    if (first.kind === 'name') return apply(segments, k + 1, childByName(v, first.name));
    if (!Array.isArray(v))
      throw new Error(`[${(first as { index: number }).index}] needs an array, found ${kindOf(v)}`);
    const [i] = selectIndexes(seg, v.length);
    return apply(segments, k + 1, v[i!]);
  }
  if (first.kind === 'wildcard') {
    if (Array.isArray(v)) return v.map((x) => apply(segments, k + 1, x));
    if (isObject(v)) return mapObject(Object.keys(v), (key) => apply(segments, k + 1, v[key]));
    throw new Error(`* needs an object or an array, found ${kindOf(v)}`);
  }
  if (first.kind === 'name') {
    const names = seg.selectors.map((x) => (x as { name: string }).name);
    return mapObject(names, (name) => apply(segments, k + 1, childByName(v, name)));
  }
  if (!Array.isArray(v)) throw new Error(`index and slice selections need an array, found ${kindOf(v)}`);
  return selectIndexes(seg, v.length).map((i) => apply(segments, k + 1, v[i]));
}

function childByName(v: unknown, name: string): unknown {
  if (!isObject(v)) throw new Error(`'${name}' needs an object, found ${kindOf(v)}`);
  if (!Object.hasOwn(v, name)) throw new Error(`no key '${name}' in the object`);
  return v[name];
}

/** An object with the given keys in order; defineProperty so a key named __proto__ stays a plain key. */
function mapObject(keys: readonly string[], value: (key: string) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    Object.defineProperty(out, key, {
      value: value(key),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}
