/**
 * A front-end server in a process of its own, for connection-limit tests (in the test
 * process, the client's sockets would count against the server's descriptors). Started as
 * `node -r test/helpers/ts-require.cjs test/helpers/limit-server.ts [maxConnections]`; prints
 * one JSON line, `{"port": P, "maxConnections": M}`, once listening.
 */
import { startServer } from '../../lib/server/server';
import { FakeService } from '../server-fixture';

const requested = process.argv[2] === undefined ? undefined : Number(process.argv[2]);
startServer(new FakeService(), { port: 0, ...(requested !== undefined ? { maxConnections: requested } : {}) }).then(
  (server) => console.log(JSON.stringify({ port: server.port, maxConnections: server.maxConnections })),
  (e: unknown) => {
    console.error((e as Error).message);
    process.exit(1);
  },
);
