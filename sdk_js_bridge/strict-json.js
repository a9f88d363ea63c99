/**
 * A small strict JSON (RFC 8259) parser for receipt headers and payloads: the JSON of
 * docs/receipts.md §2. Unlike `JSON.parse`, which silently keeps the last of two equal member
 * names, it rejects duplicate member names in every object (two parsers could otherwise disagree
 * on what was signed), nesting deeper than `MAX_JSON_DEPTH` and lone surrogates, and it keeps
 * integers exact: a number written without fraction or exponent is returned as a `bigint`.
 */

/**
 * @typedef {null | boolean | string | bigint | number | JsonValue[] | JsonObject} JsonValue
 *   `bigint` for integer literals (`12`, `-3`), `number` for literals with a fraction or exponent
 *   and for `-0` (not an integer of the profile, and a `bigint` has no negative zero).
 */
/** @typedef {{[name: string]: JsonValue}} JsonObject  a prototype-less object */

const ESCAPES = /** @type {Record<string, string>} */ ({
  '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t',
});
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const PLAIN_RUN = /[^"\\\u0000-\u001f]*/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;
// With the u flag a surrogate class matches only surrogates that are not half of a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** The deepest nesting of arrays and objects allowed; the top-level value is level 1. */
export const MAX_JSON_DEPTH = 32;

/**
 * Parse JSON text strictly. The nesting limit keeps the recursion here shallow whatever the
 * caller's stack, so the Python and JS verifiers reject exactly the same texts.
 * @param {string} text
 * @returns {JsonValue}
 * @throws {SyntaxError} on any grammar error, duplicate member name, nesting deeper than
 *   `MAX_JSON_DEPTH` or lone surrogate (raw or escaped), with its offset
 */
export function parseStrictJson(text) {
  const lone = LONE_SURROGATE.exec(text);
  if (lone !== null) throw new SyntaxError(`JSON: expected well-formed Unicode text, got a lone surrogate at offset ${lone.index}`);
  const parser = new Parser(text);
  const value = parser.value();
  parser.whitespace();
  if (parser.at < text.length) parser.fail('end of input');
  return value;
}

class Parser {
  /** @param {string} text */
  constructor(text) {
    this.text = text;
    this.at = 0;
    this.depth = 0;
  }

  /**
   * @param {string} expected
   * @returns {never}
   */
  fail(expected) {
    const got = this.at < this.text.length ? JSON.stringify(this.text[this.at]) : 'end of input';
    throw new SyntaxError(`JSON: expected ${expected} at offset ${this.at}, got ${got}`);
  }

  whitespace() {
    const text = this.text;
    let c = text.charCodeAt(this.at);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++this.at);
  }

  /** @returns {JsonValue} */
  value() {
    this.whitespace();
    const c = this.text[this.at];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    if (c === 't') return this.literal('true', true);
    if (c === 'f') return this.literal('false', false);
    if (c === 'n') return this.literal('null', null);
    return this.number();
  }

  /** Enter an array or object: one level deeper, at most `MAX_JSON_DEPTH`. */
  enter() {
    this.depth += 1;
    if (this.depth > MAX_JSON_DEPTH) this.fail(`JSON nested at most ${MAX_JSON_DEPTH} levels deep`);
    this.at += 1;
  }

  /** @returns {JsonObject} */
  object() {
    /** @type {JsonObject} */
    const object = Object.create(null);
    this.enter();
    this.whitespace();
    if (this.text[this.at] === '}') {
      this.at += 1;
      this.depth -= 1;
      return object;
    }
    for (;;) {
      this.whitespace();
      const nameAt = this.at;
      if (this.text[this.at] !== '"') this.fail('a member name');
      const name = this.string();
      if (Object.hasOwn(object, name)) {
        throw new SyntaxError(`JSON: expected unique member names, got ${JSON.stringify(name)} again at offset ${nameAt}`);
      }
      this.whitespace();
      if (this.text[this.at] !== ':') this.fail('":"');
      this.at += 1;
      object[name] = this.value();
      this.whitespace();
      const c = this.text[this.at];
      this.at += 1;
      if (c === '}') {
        this.depth -= 1;
        return object;
      }
      if (c !== ',') {
        this.at -= 1;
        this.fail('"," or "}"');
      }
    }
  }

  /** @returns {JsonValue[]} */
  array() {
    /** @type {JsonValue[]} */
    const array = [];
    this.enter();
    this.whitespace();
    if (this.text[this.at] === ']') {
      this.at += 1;
      this.depth -= 1;
      return array;
    }
    for (;;) {
      array.push(this.value());
      this.whitespace();
      const c = this.text[this.at];
      this.at += 1;
      if (c === ']') {
        this.depth -= 1;
        return array;
      }
      if (c !== ',') {
        this.at -= 1;
        this.fail('"," or "]"');
      }
    }
  }

  /** @returns {string} the decoded string; `this.at` is on the opening quote */
  string() {
    const text = this.text;
    this.at += 1;
    let result = '';
    for (;;) {
      PLAIN_RUN.lastIndex = this.at;
      PLAIN_RUN.test(text);
      result += text.slice(this.at, PLAIN_RUN.lastIndex);
      this.at = PLAIN_RUN.lastIndex;
      const c = text[this.at];
      if (c === '"') {
        this.at += 1;
        return result;
      }
      if (c !== '\\') this.fail('a string character or closing quote (control characters must be escaped)');
      const escape = text[this.at + 1];
      if (escape === 'u') {
        const unit = this.hex4(this.at + 2);
        if (unit >= 0xd800 && unit <= 0xdfff) {
          // Only a high-low pair names a character (RFC 7493 §2.1); a lone half is refused.
          const low = unit <= 0xdbff && text.startsWith('\\u', this.at + 6) ? this.hex4(this.at + 8) : -1;
          if (low < 0xdc00 || low > 0xdfff) this.fail('a surrogate pair (\\uD800-\\uDBFF then \\uDC00-\\uDFFF), not a lone surrogate');
          result += String.fromCharCode(unit, low);
          this.at += 12;
        } else {
          result += String.fromCharCode(unit);
          this.at += 6;
        }
      } else if (escape !== undefined && Object.hasOwn(ESCAPES, escape)) {
        result += ESCAPES[escape];
        this.at += 2;
      } else {
        this.at += 1;
        this.fail('one of " \\ / b f n r t u after a backslash');
      }
    }
  }

  /**
   * @param {number} at  where four hex digits must be
   * @returns {number}  their value
   */
  hex4(at) {
    const hex = this.text.slice(at, at + 4);
    if (!HEX4.test(hex)) {
      this.at = at;
      this.fail('four hex digits after \\u');
    }
    return parseInt(hex, 16);
  }

  /**
   * @template {boolean | null} T
   * @param {string} word
   * @param {T} value
   * @returns {T}
   */
  literal(word, value) {
    if (!this.text.startsWith(word, this.at)) this.fail(JSON.stringify(word));
    this.at += word.length;
    return value;
  }

  /** @returns {bigint | number} */
  number() {
    NUMBER.lastIndex = this.at;
    const match = NUMBER.exec(this.text);
    if (match === null) this.fail('a JSON value');
    this.at = NUMBER.lastIndex;
    const isInteger = match[1] === undefined && match[2] === undefined && match[0] !== '-0';
    return isInteger ? BigInt(match[0]) : Number(match[0]);
  }
}
