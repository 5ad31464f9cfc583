// Field validity, RFC 9113 §8.2.1 and §8.3.1: a message with a field that breaks these rules is
// malformed, and a proxy must not pass it on. What is at stake is the next hop: a CR LF in a
// value, or a space in :path, becomes a header or a request line of its own once the message
// is written as HTTP/1.1 (request smuggling, response splitting).
//
// Checked per character on the hot path of every request and response: plain loops over
// charCodeAt, no regular expression, no allocation.

/** A field name: not empty, no character in 0x00–0x20, 0x41–0x5a (upper case) or 0x7f–0xff.
 *  A pseudo-header's leading ":" is allowed by these ranges. */
export function badName(name: string): boolean {
  const n = name.length;
  if (n === 0) return true;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || (c >= 0x41 && c <= 0x5a) || c >= 0x7f) return true;
  }
  return false;
}

/** A field value: no NUL, LF or CR; no space or tab at its start or end. */
export function badValue(value: string): boolean {
  const n = value.length;
  if (n === 0) return false;
  let c = value.charCodeAt(0);
  if (c === 0x20 || c === 0x09) return true;
  c = value.charCodeAt(n - 1);
  if (c === 0x20 || c === 0x09) return true;
  for (let i = 0; i < n; i++) {
    c = value.charCodeAt(i);
    if (c === 0x00 || c === 0x0a || c === 0x0d) return true;
  }
  return false;
}

/** :path (and :authority): visible characters only, as a request line needs (0x21–0xff but
 *  0x7f), not empty. */
export function badTarget(value: string): boolean {
  const n = value.length;
  if (n === 0) return true;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c > 0xff) return true;
  }
  return false;
}

// tchar (RFC 9110 §5.6.2): ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[c.charCodeAt(0)] = 1;

/** :method: a token. */
export function badToken(value: string): boolean {
  const n = value.length;
  if (n === 0) return true;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return true;
  }
  return false;
}

/** Why a response head (pseudo ":status") or a trailer list (pseudo undefined) is malformed
 *  (§8.2.1, and §8.3: no other pseudo-header), or undefined. */
export function malformedFields(list: readonly string[], pseudo: ':status' | undefined): string | undefined {
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    if (name.charCodeAt(0) === 0x3a /* : */ && name !== pseudo) return `pseudo-header ${name}`;
    if (badName(name)) return `header name ${JSON.stringify(name)}`;
    if (badValue(list[i + 1]!)) return `header ${name}: a value with CR, LF, NUL or surrounding whitespace`;
  }
  return undefined;
}

/** The message for a name badName refused. */
export const nameError = (name: string): string =>
  /[A-Z]/.test(name) ? `header name ${name} is not in lower case` : `header name ${JSON.stringify(name)}: not a token`;
