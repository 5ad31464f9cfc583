// src/lib/checker.ts: the field helpers every validator shares (the resources', the routes' and
// the proxy snapshot's), each problem named by its path.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Checker, isRfc3339 } from '../../src/lib/checker.js';

function check<T>(fn: (c: Checker) => T): [T, string[]] {
  const c = new Checker();
  return [fn(c), c.errors];
}

describe('Checker', () => {
  it('text: bounds and pattern, each only when given; unset is fine unless required', () => {
    const rule = { min: 1, max: 5, pattern: /^[a-z]+$/, what: 'a word' };
    assert.deepEqual(
      check((c) => c.text('abc', 'f', rule)),
      ['abc', []],
    );
    assert.deepEqual(
      check((c) => c.text(undefined, 'f', rule)),
      [undefined, []],
    );
    assert.deepEqual(
      check((c) => c.text(undefined, 'f', { required: true })),
      [undefined, ['f: required']],
    );
    assert.deepEqual(
      check((c) => c.text('', 'f', rule)),
      [undefined, ['f: must not be empty']],
    );
    assert.deepEqual(
      check((c) => c.text('a', 'f', { min: 2 })),
      [undefined, ['f: at least 2 characters']],
    );
    assert.deepEqual(
      check((c) => c.text('abcdef', 'f', rule)),
      [undefined, ['f: at most 5 characters, got 6']],
    );
    assert.deepEqual(
      check((c) => c.text('AB', 'f', rule)),
      [undefined, ['f: "AB" is not a word']],
    );
    assert.deepEqual(
      check((c) => c.text(7, 'f', rule)),
      [undefined, ['f: must be a string, got 7']],
    );
  });

  it('oneOf: with a fallback unset is the fallback; without one unset is an error', () => {
    const kinds = ['a', 'b'] as const;
    assert.deepEqual(
      check((c) => c.oneOf('b', 'k', kinds)),
      ['b', []],
    );
    assert.deepEqual(
      check((c) => c.oneOf(undefined, 'k', kinds, 'a')),
      ['a', []],
    );
    assert.deepEqual(
      check((c) => c.oneOf(null, 'k', kinds, 'a')),
      ['a', []],
    );
    assert.deepEqual(
      check((c) => c.oneOf(undefined, 'k', kinds)),
      [undefined, ['k: undefined is not one of a, b']],
    );
    assert.deepEqual(
      check((c) => c.oneOf('c', 'k', kinds, 'a')),
      [undefined, ['k: "c" is not one of a, b']],
    );
  });

  it('integer: a whole number in range; unset is undefined unless required', () => {
    assert.deepEqual(
      check((c) => c.integer(3, 'n', 0, 5)),
      [3, []],
    );
    assert.deepEqual(
      check((c) => c.integer(undefined, 'n', 0, 5)),
      [undefined, []],
    );
    assert.deepEqual(
      check((c) => c.integer(undefined, 'n', 0, 5, { required: true })),
      [undefined, ['n: undefined is not an integer in 0..5']],
    );
    assert.deepEqual(
      check((c) => c.integer(1.5, 'n', 0, 5)),
      [undefined, ['n: 1.5 is not an integer in 0..5']],
    );
    assert.deepEqual(
      check((c) => c.integer(6, 'n', 0, 5)),
      [undefined, ['n: 6 is not an integer in 0..5']],
    );
  });

  it('array and object: a bound on the number of items; objects are not lists', () => {
    assert.deepEqual(
      check((c) => c.array([1, 2, 3], 'l', { max: 2 })),
      [[1, 2, 3], ['l: at most 2 items, got 3']],
    );
    assert.deepEqual(
      check((c) => c.array(undefined, 'l', { max: 2 })),
      [[], []],
    );
    assert.deepEqual(
      check((c) => c.object([], 'o')),
      [undefined, ['o: must be an object']],
    );
    assert.deepEqual(
      check((c) => c.object({ a: 1 }, 'o')),
      [{ a: 1 }, []],
    );
  });

  it('timestamp: an RFC 3339 date-time, kept as written', () => {
    assert.deepEqual(
      check((c) => c.timestamp('2024-05-01T12:00:00Z', 't')),
      ['2024-05-01T12:00:00Z', []],
    );
    assert.deepEqual(
      check((c) => c.timestamp(null, 't')),
      [undefined, []],
    );
    assert.deepEqual(
      check((c) => c.timestamp('2024-05-01', 't')),
      [undefined, ['t: "2024-05-01" is not an RFC 3339 timestamp (like "2024-05-01T12:00:00Z")']],
    );
  });
});

describe('isRfc3339', () => {
  it('takes what RFC 3339 section 5.6 allows, every field in range', () => {
    for (const s of [
      '2024-05-01T12:00:00Z',
      '2024-05-01t12:00:00z',
      '2024-05-01T12:00:00.5Z',
      '2024-05-01T12:00:00.123456789-07:00',
      '2024-02-29T23:59:59+14:00',
      '2000-02-29T00:00:00Z',
    ]) {
      assert.ok(isRfc3339(s), s);
    }
    for (const s of [
      '',
      '2024-05-01',
      '2024-05-01T12:00Z',
      '2024-05-01 12:00:00Z',
      '2024-05-01T12:00:00',
      '24-05-01T12:00:00Z',
      '2024-13-01T00:00:00Z',
      '2024-00-01T00:00:00Z',
      '2023-02-29T00:00:00Z',
      '1900-02-29T00:00:00Z',
      '2024-04-31T00:00:00Z',
      '2024-05-01T24:00:00Z',
      '2024-05-01T12:60:00Z',
      '2024-05-01T12:00:60Z',
      '2024-05-01T12:00:00+24:00',
      '2024-05-01T12:00:00+05:60',
      '2024-05-01T12:00:00.Z',
      ' 2024-05-01T12:00:00Z',
    ]) {
      assert.ok(!isRfc3339(s), s);
    }
  });
});
