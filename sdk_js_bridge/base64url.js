/**
 * Canonical base64url without padding (RFC 7515 §2, RFC 4648 §5): the only encoding a receipt
 * may use. Decoding rejects padding, the `+` `/` alphabet, impossible lengths and non-zero
 * trailing bits, so every byte string has exactly one accepted encoding.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Character code -> 6-bit value, or -1 outside the url-safe alphabet. */
const VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i += 1) VALUES[ALPHABET.charCodeAt(i)] = i;

/**
 * @param {string} text
 * @param {number} index
 * @returns {number}
 */
function sextet(text, index) {
  const code = text.charCodeAt(index);
  const value = code < 128 ? VALUES[code] : -1;
  if (value < 0) {
    throw new SyntaxError(
      `base64url: expected a character of A-Z a-z 0-9 - _ at offset ${index}, got ${JSON.stringify(text[index])}`,
    );
  }
  return value;
}

/**
 * Decode canonical unpadded base64url.
 * @param {string} text
 * @returns {Uint8Array<ArrayBuffer>}
 * @throws {SyntaxError} when `text` is not the canonical encoding of some byte string
 */
export function decodeBase64url(text) {
  const length = text.length;
  const tail = length % 4;
  if (tail === 1) {
    throw new SyntaxError(`base64url: a length of 4n+1 characters is impossible, got ${length}`);
  }
  const bytes = new Uint8Array(((length - tail) / 4) * 3 + (tail === 0 ? 0 : tail - 1));
  let out = 0;
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    const n = (sextet(text, i) << 18) | (sextet(text, i + 1) << 12) | (sextet(text, i + 2) << 6) | sextet(text, i + 3);
    bytes[out++] = n >> 16;
    bytes[out++] = (n >> 8) & 0xff;
    bytes[out++] = n & 0xff;
  }
  if (tail === 2) {
    const last = sextet(text, i + 1);
    if ((last & 0x0f) !== 0) throw nonCanonical(i + 1);
    bytes[out] = (sextet(text, i) << 2) | (last >> 4);
  } else if (tail === 3) {
    const last = sextet(text, i + 2);
    if ((last & 0x03) !== 0) throw nonCanonical(i + 2);
    const n = (sextet(text, i) << 10) | (sextet(text, i + 1) << 4) | (last >> 2);
    bytes[out++] = n >> 8;
    bytes[out] = n & 0xff;
  }
  return bytes;
}

/**
 * @param {number} index
 * @returns {SyntaxError}
 */
function nonCanonical(index) {
  return new SyntaxError(`base64url: expected zero padding bits in the last character (offset ${index}), got non-zero bits`);
}

/**
 * Encode bytes as unpadded base64url.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function encodeBase64url(bytes) {
  let text = '';
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    text += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    text += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    text += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63];
  }
  return text;
}
