/** JWT bearer tokens, signed here with jose: what verifies, what does not, and the cache. */
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, UnsecuredJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { JwtVerifier, parseJwtPublicKeys } from '../lib/auth/jwt-verifier';

const SECRET = new TextEncoder().encode('a-test-secret-of-at-least-32-bytes!!');
const NOW_S = 1_800_000_000;
const now = () => NOW_S * 1000;

function hs256(claims: Record<string, unknown>, secret = SECRET, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', ...header }).sign(secret);
}
const valid = { sub: 'svc', scope: 'infer monitor openid', exp: NOW_S + 600, iat: NOW_S, iss: 'https://idp.test', aud: 'tensorwire' };

function verifier(over: Partial<ConstructorParameters<typeof JwtVerifier>[0]> = {}): JwtVerifier {
  return new JwtVerifier({ secret: SECRET, issuer: 'https://idp.test', audience: 'tensorwire', now, ...over });
}

describe('JwtVerifier (HS256)', () => {
  it('accepts a valid token: subject, known scopes (others ignored), expiry', async () => {
    const v = await verifier().verify(await hs256(valid));
    expect(v.subject).toBe('svc');
    expect(v.scopes.names).toEqual(['infer', 'monitor']);
    expect(v.expiresAtMs).toBe((NOW_S + 600) * 1000);
  });

  it.each([
    ['expired', { ...valid, exp: NOW_S - 60 }, 'invalid bearer token: it has expired'],
    ['wrong audience', { ...valid, aud: 'someone-else' }, "invalid bearer token: claim 'aud' does not match"],
    ['wrong issuer', { ...valid, iss: 'https://evil.test' }, "invalid bearer token: claim 'iss' does not match"],
    ['without exp', { sub: 'svc', iss: valid.iss, aud: valid.aud }, "invalid bearer token: claim 'exp' missing"],
    ['without sub', { exp: valid.exp, iss: valid.iss, aud: valid.aud }, "invalid bearer token: claim 'sub' missing"],
    ['not yet valid', { ...valid, nbf: NOW_S + 120 }, "invalid bearer token: claim 'nbf' does not match"],
  ])('refuses a token %s', async (_what, claims, message) => {
    await expect(verifier().verify(await hs256(claims))).rejects.toMatchObject({ code: 'UNAUTHENTICATED', status: 401, message });
  });

  it('tolerates 30 s of clock skew on exp', async () => {
    await expect(verifier().verify(await hs256({ ...valid, exp: NOW_S - 20 }))).resolves.toMatchObject({ subject: 'svc' });
    await expect(verifier().verify(await hs256({ ...valid, exp: NOW_S - 40 }))).rejects.toThrow('it has expired');
  });

  it('refuses a token signed with another key', async () => {
    const other = new TextEncoder().encode('another-secret-of-at-least-32-bytes!!');
    await expect(verifier().verify(await hs256(valid, other))).rejects.toThrow('invalid bearer token: the signature does not verify');
  });

  it("refuses alg 'none'", async () => {
    const unsigned = new UnsecuredJWT(valid).encode();
    await expect(verifier().verify(unsigned)).rejects.toThrow("invalid bearer token: algorithm 'none' is not accepted (accepted: HS256)");
  });

  it('refuses garbage and over-long tokens without echoing them', async () => {
    await expect(verifier().verify('not.a.jwt')).rejects.toThrow(/^invalid bearer token: /);
    const e = await verifier().verify('x'.repeat(9000)).catch((err: Error) => err);
    expect((e as Error).message).toBe('invalid bearer token: longer than 8192 characters');
  });

  it('refuses a short secret at startup', () => {
    expect(() => new JwtVerifier({ secret: new TextEncoder().encode('short') })).toThrow('TENSORWIRE_JWT_SECRET must be at least 32 bytes, got 5');
  });

  it('remembers a verified token until its exp, then forgets it', async () => {
    let t = now();
    const v = verifier({ now: () => t });
    const token = await hs256({ ...valid, exp: NOW_S + 10 });
    expect(v.cached(token)).toBeUndefined();
    const verified = await v.verify(token);
    expect(v.cached(token)).toBe(verified);
    t += 10_000;
    expect(v.cached(token)).toBeUndefined();
    expect(v.cachedCount).toBe(0);
  });

  it('bounds the cache, dropping the oldest token', async () => {
    const v = verifier({ cacheSize: 2 });
    const tokens = await Promise.all(['a', 'b', 'c'].map((sub) => hs256({ ...valid, sub })));
    for (const t of tokens) await v.verify(t);
    expect(v.cachedCount).toBe(2);
    expect(v.cached(tokens[0]!)).toBeUndefined();
    expect(v.cached(tokens[2]!)?.subject).toBe('c');
  });

  it('does not cache failures', async () => {
    const v = verifier();
    await expect(v.verify(await hs256({ ...valid, aud: 'x' }))).rejects.toThrow();
    expect(v.cachedCount).toBe(0);
  });
});

describe('JwtVerifier (public keys)', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const otherEc = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = (k: typeof rsa) => k.publicKey.export({ type: 'spki', format: 'pem' }) as string;

  it('verifies RS256 and ES256 with PEM keys', async () => {
    const v = new JwtVerifier({ publicKeys: parseJwtPublicKeys(pem(rsa) + pem(ec)), now });
    const rs = await new SignJWT(valid).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey);
    const es = await new SignJWT({ ...valid, sub: 'ec' }).setProtectedHeader({ alg: 'ES256' }).sign(ec.privateKey);
    expect((await v.verify(rs)).subject).toBe('svc');
    expect((await v.verify(es)).subject).toBe('ec');
  });

  it('selects a JWKS key by kid and refuses a token signed by a key not in the set', async () => {
    const jwk = { ...ec.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' };
    const v = new JwtVerifier({ publicKeys: parseJwtPublicKeys(JSON.stringify({ keys: [jwk] })), now });
    const good = await new SignJWT(valid).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(ec.privateKey);
    const bad = await new SignJWT(valid).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(otherEc.privateKey);
    expect((await v.verify(good)).subject).toBe('svc');
    await expect(v.verify(bad)).rejects.toThrow('the signature does not verify');
  });

  it('refuses HS256 when only public keys are configured (no key confusion)', async () => {
    const v = new JwtVerifier({ publicKeys: parseJwtPublicKeys(pem(rsa)), now });
    const forged = await hs256(valid, new TextEncoder().encode(pem(rsa)));
    await expect(v.verify(forged)).rejects.toThrow("algorithm 'HS256' is not accepted (accepted: RS256)");
  });

  it('refuses private keys, small RSA keys and other curves in the key file', () => {
    expect(() => parseJwtPublicKeys(ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)).toThrow('PEM block 1 is a private key');
    expect(() => parseJwtPublicKeys(JSON.stringify({ keys: [ec.privateKey.export({ format: 'jwk' })] }))).toThrow('keys[0] is a private key');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => parseJwtPublicKeys(pem(small))).toThrow('RSA keys must be at least 2048 bits, got 1024');
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    expect(() => parseJwtPublicKeys(pem(p384))).toThrow('only RSA (RS256) and P-256 EC (ES256) public keys are accepted, got ec secp384r1');
    expect(() => parseJwtPublicKeys('hello')).toThrow('no PEM block and not a JWKS');
  });
});
