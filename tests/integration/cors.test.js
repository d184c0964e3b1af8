'use strict';
// CORS with an Origin allowlist and credentials (issue 3): with
// --cors-origin listing origins, a listed origin gets its own origin echoed
// with Access-Control-Allow-Credentials (so cookies and withCredentials
// work), the OPTIONS preflight answers 204 with the methods and the requested
// headers, and an origin not on the list is refused (403) on both transports.
// Clients that send no Origin (servers, native apps) are not affected.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const net = require('node:net');
const { spawn } = require('node:child_process');
const { BUILD, freePort } = require('./lib/harness');

const GOOD = 'https://good.example';
const EVIL = 'https://evil.example';
const T = { timeout: 20000 };
let gw;
let base;

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  gw = spawn(path.join(BUILD, 'belfry-gateway'), ['--listen', `127.0.0.1:${port}`,
    '--broker-pub', `tcp://127.0.0.1:${await freePort()}`, '--jwt-secret', 'x',
    '--cors-origin', `${GOOD},https://also.example`], { stdio: ['ignore', 'ignore', 'pipe'] });
  gw.exited = new Promise((r) => gw.on('exit', (code, signal) => r({ code, signal })));
  const deadline = Date.now() + 10000;
  for (;;) {
    try { if ((await fetch(`${base}/healthz`)).status === 200) break; } catch (_) { /* not yet */ }
    if (Date.now() > deadline) throw new Error('gateway did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  if (!gw) return;
  gw.kill('SIGTERM');
  const r = await gw.exited;
  assert.equal(r.code, 0, `clean exit: ${JSON.stringify(r)}`);
});

const handshake = (origin) => fetch(`${base}/socket.io/?EIO=4&transport=polling`,
  { headers: origin ? { Origin: origin } : {} });

test('a listed origin: its origin echoed with credentials allowed', T, async () => {
  const r = await handshake(GOOD);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), GOOD);
  assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
  assert.match(r.headers.get('vary') || '', /Origin/);
  assert.match(await r.text(), /^0\{"sid":/);
});

test('the OPTIONS preflight: 204, methods, the requested headers echoed', T, async () => {
  const r = await fetch(`${base}/socket.io/?EIO=4&transport=polling`, {
    method: 'OPTIONS',
    headers: { Origin: GOOD, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-custom' },
  });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get('access-control-allow-origin'), GOOD);
  assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
  assert.match(r.headers.get('access-control-allow-methods'), /POST/);
  assert.equal(r.headers.get('access-control-allow-headers'), 'content-type,x-custom');
});

test('an origin not on the list is refused on polling (403, no CORS headers)', T, async () => {
  const r = await handshake(EVIL);
  assert.equal(r.status, 403);
  assert.equal(r.headers.get('access-control-allow-origin'), null);
  assert.deepEqual(await r.json(), { code: 4, message: 'Forbidden' });
});

test('an origin not on the list is refused on the WebSocket upgrade (403)', T, async () => {
  const status = await new Promise((resolve, reject) => {
    const s = net.connect(new URL(base).port, '127.0.0.1', () => {
      s.write('GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n' +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        `Origin: ${EVIL}\r\n\r\n`);
    });
    let buf = '';
    s.on('data', (d) => { buf += d; if (buf.includes('\r\n')) { s.destroy(); resolve(buf.split(' ')[1]); } });
    s.on('error', reject);
  });
  assert.equal(status, '403');
});

test('no Origin (a server or a native app) is not a browser: allowed', T, async () => {
  const r = await handshake(null);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), null);
});
