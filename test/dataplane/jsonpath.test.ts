import { describe, expect, it } from 'vitest';
import { compileFilter } from '../../src/dataplane/filter';
import { JsonTextSelector, parseJsonPath, selectIndexes } from '../../src/jsonpath/jsonpath';

const selectJson = (path: string, text: string) =>
  new JsonTextSelector(parseJsonPath(path, { csv: false })).select(Buffer.from(text)).toString();

describe('parseJsonPath accepts', () => {
  it.each([
    ['$', false],
    ['$.features', false],
    ['$.feature_vector', false],
    ['$.a.b-c._d9', false],
    ["$['id','SageMakerOutput']", false],
    ['$["with space"]', false],
    ["$['it\\'s']", false],
    ['$.*', false],
    ['$[*].score', false],
    ['$[0]', true],
    ['$[-1]', true],
    ['$[0,2]', true],
    ['$[1:]', true],
    ['$[:3]', true],
    ['$[0:2,5:]', true],
    ['$[0,5:]', true],
    ['$[::2]', true],
    ['$[ 1 : 3 , -1 ]', true],
    ['$.instances[0:2].features[1]', false],
  ])('%s (CSV: %s)', (path, csv) => {
    expect(() => parseJsonPath(path, { csv: false })).not.toThrow();
    if (csv) expect(() => parseJsonPath(path, { csv: true })).not.toThrow();
  });
});

describe('parseJsonPath rejects with a reason', () => {
  it.each([
    ['', false, /must start with \$/],
    ['features', false, /must start with \$, found 'f'/],
    ['$..price', false, /recursive descent \(\.\.\) is not supported at character 3/],
    ['$[?(@.x > 1)]', false, /filter expressions/],
    ['$[(@.length-1)]', false, /script expressions/],
    ['$.', false, /expected a name after '\.'/],
    ['$.1abc', false, /expected a name/],
    ['$[0', false, /missing '\]'/],
    ['$[]', false, /empty brackets/],
    ["$['a", false, /unterminated quoted name/],
    ["$['a',0]", false, /cannot be mixed/],
    ['$[*,1]', false, /\* must stand alone/],
    ['$[::0]', false, /slice step must be a positive integer/],
    ['$[::-1]', false, /slice step must be a positive integer/],
    ['$ .a', false, /unexpected ' '/],
    ['$.a', true, /CSV rows take index forms only.*the name 'a'/],
    ['$[*]', true, /CSV rows take index forms only/],
    ['$[0][1]', true, /a CSV row has one level/],
    ['$[99999999999999999999]', false, /too large/],
  ])('%j (CSV: %s)', (path, csv, message) => {
    expect(() => parseJsonPath(path, { csv })).toThrow(message);
  });
});

describe('JsonTextSelector', () => {
  const doc = { id: 7, features: [1, 2, 3, 4, 5], meta: { a: 1, b: { c: 2 } }, rows: [{ s: 1 }, { s: 2 }] };
  it.each([
    ['$', doc],
    ['$.id', 7],
    ['$.features', [1, 2, 3, 4, 5]],
    ['$.features[1]', 2],
    ['$.features[-1]', 5],
    ['$.features[1:3]', [2, 3, 4]],
    ['$.features[0:1,4:]', [1, 2, 5]],
    ['$.features[-2:]', [4, 5]],
    ['$.features[3,0]', [4, 1]],
    ['$.features[::2]', [1, 3, 5]],
    ['$.features[10:]', []],
    ["$['id','meta']", { id: 7, meta: { a: 1, b: { c: 2 } } }],
    ['$.meta.b.c', 2],
    ['$.meta.*', { a: 1, b: { c: 2 } }],
    ['$.rows[*].s', [1, 2]],
    ['$.rows[0:2].s', [1, 2]],
  ])('%s', (path, expected) => {
    expect(JSON.parse(selectJson(path, JSON.stringify(doc)))).toEqual(expected);
  });

  it.each([
    ['$.missing', /no key 'missing'/],
    ['$.features[5]', /index 5 is out of range for 5 items/],
    ['$.id.x', /'x' needs an object, found a number/],
    ['$.meta[0]', /\[0\] needs an array, found an object/],
    ["$['id','nope']", /no key 'nope'/],
  ])('%s fails: %s', (path, message) => {
    expect(() => selectJson(path, JSON.stringify(doc))).toThrow(message);
  });

  it('keeps a key named __proto__ as a plain key', () => {
    expect(selectJson("$['__proto__','b']", '{"__proto__": 1, "b": 2}')).toBe('{"__proto__":1,"b":2}');
  });

  it('selects CSV field positions', () => {
    const seg = (p: string) => parseJsonPath(p, { csv: true }).segments[0]!;
    expect(selectIndexes(seg('$[0:2]'), 5)).toEqual([0, 1, 2]);
    expect(selectIndexes(seg('$[1:]'), 5)).toEqual([1, 2, 3, 4]);
    expect(selectIndexes(seg('$[0,-1]'), 5)).toEqual([0, 4]);
    expect(() => selectIndexes(seg('$[7]'), 5, 'fields')).toThrow('index 7 is out of range for 5 fields');
  });
});

/**
 * SageMaker's developer guide, "Example: Output an ID Column with Results and Exclude the ID Column
 * from the Input (CSV)" (https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html),
 * verbatim: "The first column is index 0, the second column is index 1, and the sixth column is index
 * 5." "The colon (:) tells SageMaker to include all of the elements between two values, inclusive.
 * For example, $[1:4] specifies the second through fifth columns." "If you omit the number after the
 * colon, for example, [5:], the subset includes all columns from the 6th column through the last
 * column. If you omit the number before the colon, for example, [:5], the subset includes all columns
 * from the first column (index 0) through the sixth column."
 */
describe("slice ends: SageMaker's own examples, verbatim", () => {
  const row = Buffer.from('first,second,third,fourth,fifth,sixth,seventh,eighth');
  const pick = (path: string, sliceEnd?: 'Inclusive' | 'Exclusive') =>
    compileFilter(path, 'csv', 'InputFilter', sliceEnd)!(row, 0).toString();

  it.each([
    ['$[1:4]', 'second,third,fourth,fifth'],
    ['$[5:]', 'sixth,seventh,eighth'],
    ['$[:5]', 'first,second,third,fourth,fifth,sixth'],
    ['$[1:]', 'second,third,fourth,fifth,sixth,seventh,eighth'],
    ['$[0,5:]', 'first,sixth,seventh,eighth'],
    ['$[0]', 'first'],
  ])('%s selects %s', (path, expected) => {
    expect(pick(path)).toBe(expected);
  });

  it('Extensions.JsonPathSliceEnd Exclusive reads them half-open, as Python and RFC 9535 do', () => {
    expect(pick('$[1:4]', 'Exclusive')).toBe('second,third,fourth');
    expect(pick('$[:5]', 'Exclusive')).toBe('first,second,third,fourth,fifth');
    expect(pick('$[5:]', 'Exclusive')).toBe('sixth,seventh,eighth');
  });

  it('an inclusive end of -1 is the last element; a step counts from the start', () => {
    expect(pick('$[5:-1]')).toBe('sixth,seventh,eighth');
    expect(pick('$[5:-2]')).toBe('sixth,seventh');
    expect(pick('$[0:4:2]')).toBe('first,third,fifth');
  });
});
