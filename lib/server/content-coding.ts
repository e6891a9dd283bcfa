/**
 * HTTP content codings: which coding a request body arrived in (`Content-Encoding`) and
 * which one its answer may go out in (`Accept-Encoding`). Pure header parsing, no zlib: the
 * work itself is in body-decompression.ts and response-compression.ts.
 *
 * The server speaks gzip and deflate, the two Triton's HTTP server and clients use
 * (`request_compression_algorithm` / `response_compression_algorithm` of tritonclient.http).
 */
import { TensorwireError } from '../errors';
import { truncateForMessage } from '../util/message-text';

/** A content coding the server can decode and encode. */
export type ContentCoding = 'gzip' | 'deflate';

/** What an answer refusing a coding says the server accepts (RFC 9110 §12.5.3; Triton sends the same). */
export const SUPPORTED_CODINGS = 'gzip, deflate';

/**
 * The coding of a request body from its `Content-Encoding` header: undefined for none
 * ('' or `identity`). Anything else, including a list of several codings (`gzip, gzip`: each
 * layer would multiply the work a small body can cost), is INVALID_INPUT naming the header:
 * 400 as Triton answers it, not 415, so the catalogue keeps one code per kind of fault.
 */
export function requestCoding(header: string | undefined): ContentCoding | undefined {
  if (header === undefined || header === '') return undefined;
  const coding = header.trim().toLowerCase();
  if (coding === 'gzip' || coding === 'x-gzip') return 'gzip';
  if (coding === 'deflate') return 'deflate';
  if (coding === 'identity' || coding === '') return undefined;
  const what = coding.includes(',') ? 'more than one coding' : 'an unsupported coding';
  throw new TensorwireError('INVALID_INPUT', `Content-Encoding '${truncateForMessage(header)}' is ${what}: send the body uncompressed or with one of gzip, deflate`);
}

/**
 * The coding an answer should go out in for an `Accept-Encoding` header, or undefined for
 * none. The highest q-value wins, the first listed on a tie (as Triton chooses); `q=0` means
 * "not acceptable", and `*` stands for every coding not named. A header the server cannot
 * read (a bad q-value) counts as absent for that entry: identity is always acceptable.
 */
export function responseCoding(header: string): ContentCoding | undefined {
  let gzipQ = -1;
  let deflateQ = -1;
  let starQ = -1;
  let identityQ = -1;
  let deflateFirst = false;
  // Bounded: a header is at most what uWS accepts (a few KiB), and each entry costs O(length).
  for (const entry of header.split(',')) {
    const semicolon = entry.indexOf(';');
    const name = (semicolon < 0 ? entry : entry.slice(0, semicolon)).trim().toLowerCase();
    const q = semicolon < 0 ? 1 : qValue(entry.slice(semicolon + 1));
    if (q < 0) continue;
    if (name === 'gzip' || name === 'x-gzip') gzipQ = Math.max(gzipQ, q);
    else if (name === 'deflate') {
      if (deflateQ < 0 && gzipQ < 0) deflateFirst = true;
      deflateQ = Math.max(deflateQ, q);
    } else if (name === '*') starQ = Math.max(starQ, q);
    else if (name === 'identity') identityQ = Math.max(identityQ, q);
  }
  // `*` stands for the codings not named themselves.
  const gzip = gzipQ >= 0 ? gzipQ : Math.max(starQ, 0);
  const deflate = deflateQ >= 0 ? deflateQ : Math.max(starQ, 0);
  const bestQ = Math.max(gzip, deflate);
  // Nothing acceptable, or identity explicitly preferred over every coding: send as is.
  if (bestQ <= 0 || identityQ > bestQ) return undefined;
  if (gzip === deflate) return deflateFirst ? 'deflate' : 'gzip';
  return gzip > deflate ? 'gzip' : 'deflate';
}

/** The q of `;q=0.5` parameters (RFC 9110 §12.4.2: 0 to 1, three decimals at most), -1 when malformed. */
function qValue(params: string): number {
  const match = /(?:^|;)\s*q\s*=([^;]*)/i.exec(params);
  if (match === null) return 1; // parameters other than q
  const text = match[1]!.trim();
  return /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(text) ? Number(text) : -1;
}
