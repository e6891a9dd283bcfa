/**
 * What access control costs per request: authenticate + authorize (+ the limiter) in
 * process, for an API key and a JWT seen before (the hot path: the same client sending
 * request after request), against the naive peer (SHA-256 of the key on every request)
 * and a first-seen JWT (a real jose signature check). Rounds alternate between cases and
 * each keeps its best round, so a busy neighbour hurts all alike. The last column puts the
 * cost against one request of the design's JSON serving rate (53k req/s, ~18.9 µs each):
 * the target is under 3% with API keys. Header strings are made fresh for every call, as a
 * server receives them; the baseline row is that copy alone, subtracted in the third column.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/auth.js [--rounds 9] [--ms 100]
 */
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { AccessControl, type AuthPrincipal } from '../lib/auth/access-control';
import { generateApiKey, hashApiKey } from '../lib/auth/api-key';
import { parseAuthFile } from '../lib/auth/auth-file';
import { AuditLog } from '../lib/auth/audit';
import { JwtVerifier } from '../lib/auth/jwt-verifier';
import { PrincipalLimiter } from '../lib/auth/principal-limiter';
import type { Need } from '../lib/auth/scopes';
import { formatTable } from './table';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '9' }, ms: { type: 'string', default: '100' } } });
const ROUNDS = Number(args.rounds);
const ROUND_MS = Number(args.ms);
const REQUEST_NS = 1e9 / 53_000;

async function main(): Promise<void> {
  const secret = new TextEncoder().encode('bench-secret-bench-secret-bench-secret');
  // 1,000 keys in the file, as a busy deployment might have; the client uses one of them.
  const keys = Array.from({ length: 1000 }, () => generateApiKey());
  const config = parseAuthFile(JSON.stringify({ keys: keys.map((k, i) => ({ name: `k${i}`, sha256: hashApiKey(k), scopes: ['infer:resnet*', 'monitor'] })) }));
  const audit = new AuditLog({ write: () => undefined });
  const access = new AccessControl({ authConfig: () => config, jwt: new JwtVerifier({ secret }), audit });
  const open = new AccessControl({ audit });
  const limiter = new PrincipalLimiter();
  // Each request brings its header as a new string (uWS copies it out of the socket buffer),
  // whose hash V8 has not computed yet: every case makes one from bytes, as a server would.
  const headerBytes = Buffer.from(`Bearer ${keys[500]}`, 'latin1');
  const header = (): string => headerBytes.toString('latin1');
  const token = await new SignJWT({ sub: 'svc', scope: 'infer monitor' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(secret);
  const jwtBytes = Buffer.from(`Bearer ${token}`, 'latin1');
  const jwtHeader = (): string => jwtBytes.toString('latin1');
  await access.authenticate(jwtHeader(), { address: '10.0.0.1' });
  const need: Need = { scope: 'infer', model: 'resnet50' };
  const info = { address: '10.0.0.1' };
  const limits = { requestsPerSecond: 1e6, burst: 1e6, concurrent: 1000 };
  let sink = 0;

  const check = (principal: unknown): void => {
    if (access.authorize(principal as AuthPrincipal, need) !== undefined) throw new Error('bench principal refused');
    sink++;
  };
  const cases: { name: string; run: () => void }[] = [
    { name: 'baseline: copying the header (any server)', run: () => void (header().length > 0 && sink++) },
    { name: 'no --auth (loopback client)', run: () => void (open.authorize(open.authenticate(undefined, { address: '127.0.0.1' }) as AuthPrincipal, need) ?? sink++) },
    { name: 'API key (seen before)', run: () => check(access.authenticate(header(), info)) },
    { name: 'API key + limiter admit/release', run: () => {
      const p = access.authenticate(header(), info) as AuthPrincipal;
      check(p);
      if (limiter.admit(p.limiterKey, limits) !== undefined) throw new Error('limited');
      limiter.release(p.limiterKey);
    } },
    { name: 'peer: SHA-256 of the key every request', run: () => {
      const entry = config.keysByHash.get(hashApiKey(header().slice(7)));
      if (entry === undefined) throw new Error('unknown');
      sink++;
    } },
    { name: 'JWT HS256 (seen before)', run: () => check(access.authenticate(jwtHeader(), info)) },
  ];
  const best = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      for (let i = 0; i < 2000; i++) c.run(); // warm
      let n = 0;
      const start = process.hrtime.bigint();
      const until = start + BigInt(ROUND_MS * 1e6);
      let now = start;
      while (now < until) {
        for (let i = 0; i < 1000; i++) c.run();
        n += 1000;
        now = process.hrtime.bigint();
      }
      const ns = Number(now - start) / n;
      best.set(c.name, Math.min(best.get(c.name) ?? Infinity, ns));
    }
  }
  // A JWT seen for the first time: jose's signature check, asynchronous (a few hundred only).
  const verifier = new JwtVerifier({ secret });
  const fresh = await Promise.all(Array.from({ length: 300 }, (_, i) => new SignJWT({ sub: `s${i}`, scope: 'infer' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(secret)));
  const t0 = process.hrtime.bigint();
  for (const t of fresh) await verifier.verify(t);
  best.set('JWT HS256 first seen (jose verify)', Number(process.hrtime.bigint() - t0) / fresh.length);

  const copy = best.get('baseline: copying the header (any server)')!;
  const rows = [...best].map(([name, ns]) => {
    const own = name.startsWith('baseline') || name.startsWith('no --auth') || name.startsWith('JWT HS256 first') ? ns : ns - copy;
    return [name, ns, own, `${((own / REQUEST_NS) * 100).toFixed(2)}%`];
  });
  console.log(formatTable(['case', 'ns/op', 'ns/op less the copy', 'of a request at 53k req/s'], rows));
  if (sink < 0) console.log(sink);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
