import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpawnCommandRunner } from './command-runner.js';
import { pinnedFetch, plainRequest } from './pinned-fetch.js';
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

describe('plainRequest against a real HTTP server on loopback', () => {
  it('sends method, headers and body, answers status and text, and keeps one connection for a command\'s requests', async () => {
    let connections = 0;
    const seen: string[] = [];
    const server = createHttpServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => {
        seen.push(`${req.method ?? ''} ${req.url ?? ''} ${req.headers.authorization ?? ''} ${body}`);
        res.statusCode = req.url === '/missing' ? 404 : 200;
        res.end(`answer to ${req.url ?? ''}`);
      });
    });
    server.on('connection', () => { connections++; });
    await new Promise<void>((r) => { server.listen(0, '127.0.0.1', r); });
    try {
      const url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
      const send = plainRequest();
      const a = await send(`${url}/v1/x?y=1`, { method: 'POST', headers: { Authorization: 'Bearer t' }, body: '{"é":1}' });
      expect({ status: a.status, ok: a.ok, text: await a.text() }).toEqual({ status: 200, ok: true, text: 'answer to /v1/x?y=1' });
      const b = await send(new URL(`${url}/missing`));
      expect({ status: b.status, ok: b.ok }).toEqual({ status: 404, ok: false });
      expect(seen).toEqual(['POST /v1/x?y=1 Bearer t {"é":1}', 'GET /missing  ']);
      expect(connections).toBe(1);
      await expect(send('https://127.0.0.1:1/')).rejects.toThrow(/for http: URLs/);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => { server.close(() => { r(); }); });
    }
  });
});
