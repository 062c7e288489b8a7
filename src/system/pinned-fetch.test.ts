import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpawnCommandRunner } from './command-runner.js';
import { pinnedFetch } from './pinned-fetch.js';
import { generateIdentity, PinMismatchError, type TlsIdentity } from './tls-identity.js';

describe('pinnedFetch against a real HTTPS server on loopback', () => {
  let identity: TlsIdentity;
  let other: TlsIdentity;
  let server: Server;
  let url: string;
  let connections = 0;

  beforeAll(async () => {
    const runner = new SpawnCommandRunner();
    identity = await generateIdentity(runner, 'pinned-fetch-test', ['127.0.0.1']);
    other = await generateIdentity(runner, 'someone-else', ['127.0.0.1']);
    server = createServer({ key: identity.keyPem, cert: identity.certPem }, (req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`${req.method ?? ''} ${req.url ?? ''}`);
    });
    server.on('secureConnection', () => { connections++; });
    await new Promise<void>((r) => { server.listen(0, '127.0.0.1', r); });
    url = `https://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => { server.close(() => { r(); }); });
  });

  it('with keepAlive, the requests of one fetch share one pinned connection; without it, each makes its own', async () => {
    const kept = pinnedFetch({ fingerprint: identity.fingerprint }, { keepAlive: true });
    const start = connections;
    for (const path of ['/a', '/b', '/c']) expect(await (await kept(`${url}${path}`, { method: 'POST', body: '{}' })).text()).toBe(`POST ${path}`);
    expect(connections - start).toBe(1);

    const fresh = pinnedFetch({ fingerprint: identity.fingerprint });
    const before = connections;
    for (const path of ['/d', '/e']) expect(await (await fresh(`${url}${path}`)).text()).toBe(`GET ${path}`);
    expect(connections - before).toBe(2);
  });

  it('with keepAlive, a server showing another certificate gets nothing sent and the fetch rejects with the pin mismatch', async () => {
    const wrong = pinnedFetch({ fingerprint: other.fingerprint }, { keepAlive: true });
    const err: unknown = await wrong(`${url}/secret`, { headers: { authorization: 'Bearer x' } }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as TypeError).cause).toBeInstanceOf(PinMismatchError);
  });
});
