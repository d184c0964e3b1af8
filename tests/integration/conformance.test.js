'use strict';
// tests/integration/conformance.test.js — wire-level conformance of the
// gateway's Engine.IO v4 / Socket.IO v5 implementation, run against
// `belfry-gateway --conformance` (the reference test application of the
// official protocol suites: /engine.io/ raw echo, /socket.io/ with namespaces
// / and /custom, /echo plain WebSocket echo; pingInterval 300, pingTimeout 200,
// maxPayload 1e6, connectTimeout 1000, CORS *).
//
// Design: one gateway process for the file (started on a free loopback port,
// stopped by PID through the harness); after each test we check it is still
// alive, and if it died we fail that test with the log tail and start a fresh
// one so the remaining cases still say something. Polling goes through node's
// fetch, WebSocket through the npm `ws` client wrapped in a small queue (every
// frame, text as string and binary as Buffer, in arrival order; close code and
// time). Every case of the official suites is covered here with our own code,
// plus the behaviours issue 3 adds (cancelled long-poll, upgrade queue
// hand-over, maxPayload, CORS, error bodies, EIO=3, byte-exact JSON). Strings
// are compared exactly where the suites compare them; timings are measured
// from the handshake with a few tens of ms of slack.

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const WebSocket = require('ws');
const { BUILD, ROOT, Proc, freePort, sleep } = require('./lib/harness');

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const T = { timeout: 15000 };

// ---------------------------------------------------------------------------
// The conformance gateway.
let gw = null;     // { proc, port, http, ws }
let deaths = 0;

async function startGateway() {
  const port = await freePort();
  const pub = await freePort();
  const proc = new Proc('gateway-conformance', path.join(BUILD, 'belfry-gateway'), [
    '--conformance', '--listen', `127.0.0.1:${port}`, '--broker-pub', `tcp://127.0.0.1:${pub}`,
    '--log-level', process.env.BELFRY_TEST_LOG_LEVEL || 'debug',
  ], { logFile: path.join(ROOT, 'tests', 'out', 'conformance', `gateway-${port}.log`) });
  await proc.waitFor(/event=ready/, 15000);
  gw = { proc, port, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` };
}

async function stopGateway() {
  if (!gw) return;
  const r = await gw.proc.stop('SIGTERM');
  const tail = gw.proc.tail(30);
  gw = null;
  if (r.forced) throw new Error(`the gateway did not exit within the stop timeout of SIGTERM\n${tail}`);
  if (r.code !== 0 && r.code !== null) throw new Error(`the gateway exited with ${r.code} on SIGTERM\n${tail}`);
  if (/AddressSanitizer|LeakSanitizer|runtime error:/.test(tail)) throw new Error(`sanitizer report:\n${tail}`);
}

// After each test: the gateway must still be running.
async function checkAlive() {
  if (gw && !gw.proc.alive) {
    const info = JSON.stringify(gw.proc.exitInfo);
    const tail = gw.proc.tail(40);
    deaths++;
    await startGateway();
    throw new Error(`the gateway died during this test (${info}); last log lines:\n${tail}`);
  }
}

// ---------------------------------------------------------------------------
// HTTP helpers.
const q = (prefix, query) => `${gw.http}${prefix}?${query}`;
const eioq = (sid, extra = '') => `EIO=4&transport=polling${sid ? `&sid=${sid}` : ''}${extra}`;

async function req(url, opts = {}) {
  const r = await fetch(url, opts);
  const body = await r.text();
  return { status: r.status, headers: r.headers, body };
}

async function handshake(prefix, extra = '') {
  const r = await req(q(prefix, `EIO=4&transport=polling${extra}`));
  assert.equal(r.status, 200, `handshake: status ${r.status} body ${JSON.stringify(r.body)}`);
  assert.ok(r.body.startsWith('0'), `handshake body does not start with 0: ${JSON.stringify(r.body)}`);
  const open = JSON.parse(r.body.slice(1));
  return { sid: open.sid, open, at: Date.now(), r };
}
const get = (prefix, sid, extra = '', opts = {}) => req(q(prefix, eioq(sid, extra)), opts);
const post = (prefix, sid, body, extra = '') => req(q(prefix, eioq(sid, extra)), { method: 'POST', body });

// Plain node:http request (fresh connection, full control of headers).
function rawHttp(method, url, headers = {}, body = null) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== null) h['content-length'] = Buffer.byteLength(body);
    const r = http.request(url, { method, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.setTimeout(5000, () => r.destroy(new Error(`${method} ${url}: no response within 5 s`)));
    if (body !== null) r.write(body);
    r.end();
  });
}

function assertErrorBody(r, code, message, label) {
  assert.equal(r.status, 400, `${label}: expected 400, got ${r.status} ${JSON.stringify(r.body)}`);
  let j;
  try { j = JSON.parse(r.body); } catch (_) { assert.fail(`${label}: error body is not JSON: ${JSON.stringify(r.body)}`); }
  if (Array.isArray(code)) assert.ok(code.includes(j.code), `${label}: code ${j.code} not in ${code}; body ${r.body}`);
  else assert.equal(r.body, JSON.stringify({ code, message }), `${label}: error body`);
}

// ---------------------------------------------------------------------------
// WebSocket client with a frame queue.
class Ws {
  constructor(url, opts = {}) {
    this.url = url;
    this.frames = [];
    this.waiters = [];
    this.closeInfo = null;
    this.error = null;
    this.t0 = Date.now();
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, ...opts });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => { this.openedAt = Date.now(); resolve(this); });
      this.ws.once('unexpected-response', (rq, res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const e = new Error(`WebSocket handshake refused: ${res.statusCode} ${Buffer.concat(chunks).toString('utf8')}`);
          e.status = res.statusCode;
          e.body = Buffer.concat(chunks).toString('utf8');
          reject(e);
          rq.destroy();
          if (!this.closeInfo) {
            this.closeInfo = { code: `http-${res.statusCode}`, reason: e.body, at: Date.now() };
            this._wake();
            this._resolveClosed(this.closeInfo);
          }
        });
      });
      this.ws.once('error', (e) => { this.error = e; reject(e); });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this._resolveClosed = resolve;
      this.ws.on('close', (code, reason) => {
        if (this.closeInfo) return;
        this.closeInfo = { code, reason: reason.toString('utf8'), at: Date.now() };
        this._wake();
        resolve(this.closeInfo);
      });
    });
    this.ws.on('error', (e) => { this.error = this.error || e; });
    this.ws.on('message', (data, isBinary) => {
      this.frames.push({ data: isBinary ? Buffer.from(data) : data.toString('utf8'), at: Date.now() });
      this._wake();
    });
  }

  _wake() { const w = this.waiters; this.waiters = []; for (const f of w) f(); }

  // Next frame (skipping "2" pings if skipPings); rejects on timeout or close.
  async next(ms = 2000, { skipPings = false } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      while (this.frames.length) {
        const f = this.frames.shift();
        if (skipPings && f.data === '2') continue;
        this.last = f;
        return f.data;
      }
      if (this.closeInfo) throw new Error(`${this.url}: closed (${this.closeInfo.code}) while waiting for a frame`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.url}: no frame within ${ms} ms`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  async nextN(n, ms = 2000, opts = {}) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.next(ms, opts));
    return out;
  }

  // Resolves with the close info, or rejects if it stays open ms longer.
  async expectClose(ms = 2000, label = 'connection') {
    let timer;
    const r = await Promise.race([this.closed, new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); })]);
    clearTimeout(timer);
    if (!r) {
      const seen = this.frames.map((f) => (typeof f.data === 'string' ? f.data : `<bin ${f.data.toString('hex')}>`));
      throw new Error(`${label}: still open ${ms} ms later (unread frames: ${JSON.stringify(seen)})`);
    }
    return r;
  }

  send(d) { this.ws.send(d); }

  close() { try { this.ws.terminate(); } catch (_) { /* ignore */ } }
}

const openWs = [];
async function ws(prefix, query = 'EIO=4&transport=websocket') {
  const c = new Ws(`${gw.ws}${prefix}${query === null ? '' : `?${query}`}`);
  openWs.push(c);
  await c.opened;
  return c;
}
// Expects the WebSocket handshake to be refused with HTTP 400.
async function wsRefused(prefix, query, label) {
  const c = new Ws(`${gw.ws}${prefix}?${query}`);
  openWs.push(c);
  try {
    await c.opened;
  } catch (e) {
    if (e.status !== undefined) {
      assert.equal(e.status, 400, `${label}: expected 400, got ${e.status} ${e.body}`);
      return e;
    }
    throw new Error(`${label}: expected an HTTP 400 answer, got a transport error: ${e.message}`);
  }
  const first = await c.next(300).catch(() => null);
  throw new Error(`${label}: the WebSocket was accepted (first frame ${JSON.stringify(first)}) instead of HTTP 400`);
}
async function eioWs(prefix) {
  const c = await ws(prefix);
  const h = await c.next();
  assert.ok(h.startsWith('0'), `first WS frame is not an open packet: ${JSON.stringify(h)}`);
  c.open = JSON.parse(h.slice(1));
  c.at = Date.now();
  return c;
}
// WS + Engine.IO open + Socket.IO CONNECT to / (consumes the CONNECT reply and the auth event).
async function sioWs(connect = '40') {
  const c = await eioWs('/socket.io/');
  c.send(connect);
  const reply = await c.next(2000, { skipPings: true });
  assert.match(reply, /^40\{"sid":"[^"]+"\}$/, 'CONNECT reply');
  const auth = await c.next(2000, { skipPings: true });
  assert.equal(auth, '42["auth",{}]');
  return c;
}

function assertOpenPacket(open, upgrades) {
  assert.deepEqual(Object.keys(open).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
  assert.equal(typeof open.sid, 'string');
  assert.ok(open.sid.length > 0);
  assert.deepEqual(open.upgrades, upgrades);
  assert.equal(open.pingInterval, PING_INTERVAL);
  assert.equal(open.pingTimeout, PING_TIMEOUT);
  assert.equal(open.maxPayload, 1000000);
}

function within(ms, lo, hi, label) {
  assert.ok(ms >= lo && ms <= hi, `${label}: ${ms} ms, expected between ${lo} and ${hi} ms`);
}

// ---------------------------------------------------------------------------
before(startGateway);
afterEach(async () => {
  for (const c of openWs.splice(0)) c.close();
  await checkAlive();
});
after(async () => {
  for (const c of openWs.splice(0)) c.close();
  await stopGateway();
  assert.equal(deaths, 0, `the gateway died ${deaths} time(s) during this file (see the failed tests)`);
});

// Cases the official suites run at both /engine.io/ and /socket.io/.
for (const prefix of ['/engine.io/', '/socket.io/']) {
  describe(`Engine.IO at ${prefix}`, () => {
    describe('handshake', () => {
      test('polling: opens a session with exactly the five keys', T, async () => {
        const { open, r } = await handshake(prefix);
        assertOpenPacket(open, ['websocket']);
        assert.match(r.headers.get('content-type') || '', /^text\/plain; ?charset=UTF-8$/i);
      });

      test('polling: sids are distinct', T, async () => {
        const a = await handshake(prefix);
        const b = await handshake(prefix);
        assert.notEqual(a.sid, b.sid);
      });

      test('polling: missing or non-numeric EIO → 400', T, async () => {
        for (const qs of ['transport=polling', 'EIO=abc&transport=polling']) {
          const r = await req(q(prefix, qs));
          assert.equal(r.status, 400, `${qs}: ${r.status} ${r.body}`);
          assertErrorBody(r, [3, 5], null, qs);
        }
      });

      test('polling: missing or unknown transport → 400 {"code":0,"message":"Transport unknown"}', T, async () => {
        for (const qs of ['EIO=4', 'EIO=4&transport=abc']) {
          assertErrorBody(await req(q(prefix, qs)), 0, 'Transport unknown', qs);
        }
      });

      test('polling: POST or PUT without sid → 400 {"code":2,"message":"Bad handshake method"}', T, async () => {
        for (const method of ['POST', 'PUT']) {
          assertErrorBody(await req(q(prefix, 'EIO=4&transport=polling'), { method }), 2, 'Bad handshake method', method);
        }
      });

      test('polling: EIO=3 is refused with {"code":5,"message":"Unsupported protocol version"}', T, async () => {
        assertErrorBody(await req(q(prefix, 'EIO=3&transport=polling')), 5, 'Unsupported protocol version', 'EIO=3');
        assertErrorBody(await req(q(prefix, 'EIO=5&transport=polling')), 5, 'Unsupported protocol version', 'EIO=5');
      });

      test('polling: unknown sid → 400 {"code":1,"message":"Session ID unknown"}', T, async () => {
        assertErrorBody(await get(prefix, 'no-such-sid'), 1, 'Session ID unknown', 'GET');
        assertErrorBody(await post(prefix, 'no-such-sid', '4x'), 1, 'Session ID unknown', 'POST');
      });

      test('polling: GET transport=websocket without an Upgrade → 400 {"code":3,"message":"Bad request"}', T, async () => {
        assertErrorBody(await req(q(prefix, 'EIO=4&transport=websocket')), 3, 'Bad request', 'no upgrade');
      });

      test('unknown query parameters are ignored', T, async () => {
        const { sid } = await handshake(prefix, '&t=1700000000.123&j=0&b64=1&foo=bar&token=x');
        const r = await post(prefix, sid, '3', '&t=Pxyz&foo=');
        assert.equal(r.status, 200, `POST with extra params: ${r.status} ${r.body}`);
        assert.equal(r.body, 'ok');
        const c = await ws(prefix, `EIO=4&transport=websocket&t=abc&sid=${sid}&zz=1`);
        c.send('2probe');
        assert.equal(await c.next(), '3probe');
      });

      test('WebSocket: opens a session, first frame 0{...} with upgrades []', T, async () => {
        const c = await eioWs(prefix);
        assertOpenPacket(c.open, []);
      });

      test('WebSocket: missing or bad EIO / transport refuse the upgrade with 400', T, async () => {
        for (const qs of ['transport=websocket', 'EIO=abc&transport=websocket', 'EIO=4', 'EIO=4&transport=abc', 'EIO=3&transport=websocket']) {
          await wsRefused(prefix, qs, qs);
        }
      });

      test('WebSocket: unknown sid refuses the upgrade with 400', T, async () => {
        const e = await wsRefused(prefix, 'EIO=4&transport=websocket&sid=no-such-sid', 'unknown sid');
        assert.equal(e.body, '{"code":1,"message":"Session ID unknown"}');
      });
    });

    describe('heartbeat', () => {
      test('polling: pings "2" every 300 ms after the handshake / pong, 3 rounds', T, async () => {
        const { sid, at } = await handshake(prefix);
        let from = at;
        for (let i = 0; i < 3; i++) {
          const r = await get(prefix, sid);
          const dt = Date.now() - from;
          assert.equal(r.status, 200, `round ${i}: ${r.status} ${r.body}`);
          assert.equal(r.body, '2', `round ${i}`);
          within(dt, PING_INTERVAL - 40, PING_INTERVAL + 150, `ping ${i} delay`);
          const p = await post(prefix, sid, '3');
          from = Date.now();
          assert.equal(p.status, 200);
          assert.equal(p.body, 'ok');
        }
      });

      test('polling: without a pong the session is gone at pingInterval+pingTimeout (500 ms)', T, async (t) => {
        const { sid, at } = await handshake(prefix);
        await sleep(PING_INTERVAL + PING_TIMEOUT - (Date.now() - at));
        const r = await get(prefix, sid);
        if (r.status === 200 && r.body === '2') {
          // The ping is still queued: on a loaded machine the ping timer fired
          // late, and the pong deadline counts from the ping actually sent.
          // The session must still end without a pong, soon after.
          t.diagnostic(`ping still queued at ${Date.now() - at} ms (late timer)`);
          const r2 = await get(prefix, sid).catch((e) => ({ status: 'error', body: e.message }));
          within(Date.now() - at, 400, 900, 'end of the session without a pong');
          assert.ok(r2.status === 400 || (r2.status === 200 && ['1', '6'].includes(r2.body)) || r2.status === 'error',
            `GET while the pong is overdue: ${r2.status} ${JSON.stringify(r2.body)}`);
          assertErrorBody(await get(prefix, sid), 1, 'Session ID unknown', 'GET after the timeout');
          return;
        }
        assertErrorBody(r, 1, 'Session ID unknown', 'GET at 500 ms');
      });

      test('polling: the session is still alive at 400 ms (ping waiting), gone at 500 ms', T, async () => {
        const { sid, at } = await handshake(prefix);
        await sleep(400 - (Date.now() - at));
        const r = await get(prefix, sid);
        assert.equal(r.status, 200, `GET at 400 ms: ${r.status} ${r.body}`);
        assert.equal(r.body, '2');
        await sleep(Math.max(0, 505 - (Date.now() - at)));
        assert.equal((await get(prefix, sid)).status, 400, 'GET after 500 ms');
      });

      test('polling: a parked GET is answered with "2" at ~300 ms, then the session times out', T, async () => {
        const { sid, at } = await handshake(prefix);
        const r = await get(prefix, sid);
        within(Date.now() - at, PING_INTERVAL - 40, PING_INTERVAL + 150, 'ping');
        assert.equal(r.body, '2');
        // A GET parked while waiting for the pong is ended by the timeout.
        const r2 = await get(prefix, sid).catch((e) => ({ status: 'error', body: e.message }));
        within(Date.now() - at, 400, 800, 'end of the parked GET');
        assert.ok(r2.status === 400 || (r2.status === 200 && ['1', '6'].includes(r2.body)) || r2.status === 'error',
          `parked GET during ping timeout: ${r2.status} ${JSON.stringify(r2.body)}`);
        assert.equal((await get(prefix, sid)).status, 400);
      });

      test('WebSocket: pings "2" every 300 ms after open / pong, 3 rounds', T, async () => {
        const c = await eioWs(prefix);
        let from = c.at;
        for (let i = 0; i < 3; i++) {
          const d = await c.next(1000);
          assert.equal(d, '2', `round ${i}`);
          within(c.last.at - from, PING_INTERVAL - 40, PING_INTERVAL + 150, `ping ${i} delay`);
          c.send('3');
          from = Date.now();
        }
      });

      test('WebSocket: without a pong the connection closes at ~500 ms', T, async () => {
        const c = await eioWs(prefix);
        assert.equal(await c.next(1000), '2');
        const info = await c.expectClose(1500, 'ping timeout');
        within(info.at - c.at, PING_INTERVAL + PING_TIMEOUT - 40, PING_INTERVAL + PING_TIMEOUT + 200, 'close');
      });
    });

    describe('close', () => {
      test('polling: POST "1" while a GET is parked → the GET gets "6", the next GET 400', T, async () => {
        const { sid } = await handshake(prefix);
        const pending = get(prefix, sid);
        await sleep(20);
        const p = await post(prefix, sid, '1');
        assert.equal(p.status, 200);
        const r = await pending;
        assert.equal(r.status, 200);
        assert.equal(r.body, '6');
        assertErrorBody(await get(prefix, sid), 1, 'Session ID unknown', 'GET after close');
      });

      test('polling: POST "1" and GET sent together (suite order) → "6", then 400', T, async () => {
        const { sid } = await handshake(prefix);
        const [r] = await Promise.all([get(prefix, sid), post(prefix, sid, '1')]);
        assert.equal(r.status, 200);
        assert.equal(r.body, '6');
        assert.equal((await get(prefix, sid)).status, 400);
      });

      test('WebSocket: "1" closes the connection before the ping timeout could', T, async () => {
        const c = await eioWs(prefix);
        c.send('1');
        const info = await c.expectClose(1000, 'after "1"');
        assert.ok(info.at - c.at < PING_INTERVAL + PING_TIMEOUT - 50,
          `closed ${info.at - c.at} ms after open: only the ping timeout closed it, "1" was ignored`);
      });
    });

    describe('upgrade', () => {
      test('2probe → 3probe, a GET during the probe gets "6" at once, 5, then the session is on WS', T, async () => {
        const { sid } = await handshake(prefix);
        const c = await ws(prefix, `EIO=4&transport=websocket&sid=${sid}`);
        c.send('2probe');
        assert.equal(await c.next(), '3probe');
        const t0 = Date.now();
        const r = await get(prefix, sid);
        assert.equal(r.status, 200);
        assert.equal(r.body, '6');
        assert.ok(Date.now() - t0 < 150, `the noop took ${Date.now() - t0} ms`);
        c.send('5');
        // Heartbeat now runs on WS.
        assert.equal(await c.next(1000), '2');
        c.send('3');
      });

      test('a GET parked before the probe is answered with "6"', T, async () => {
        const { sid } = await handshake(prefix);
        const pending = get(prefix, sid);
        await sleep(20);
        const c = await ws(prefix, `EIO=4&transport=websocket&sid=${sid}`);
        c.send('2probe');
        assert.equal(await c.next(), '3probe');
        const r = await pending;
        assert.equal(r.status, 200);
        assert.equal(r.body, '6');
        c.send('5');
      });

      test('after 5: a polling GET with that sid → 400, a second WS with that sid is closed', T, async () => {
        const { sid } = await handshake(prefix);
        const c = await ws(prefix, `EIO=4&transport=websocket&sid=${sid}`);
        c.send('2probe');
        assert.equal(await c.next(), '3probe');
        c.send('5');
        await sleep(30);
        const r = await get(prefix, sid);
        assert.equal(r.status, 400, `GET after upgrade: ${r.status} ${r.body}`);
        const c2 = new Ws(`${gw.ws}${prefix}?EIO=4&transport=websocket&sid=${sid}`);
        openWs.push(c2);
        await c2.opened.catch(() => {});
        await c2.expectClose(1000, 'second WS with the same sid');
        // The first one still works.
        assert.equal(await c.next(1000), '2');
        c.send('3');
      });

      test('2probe and 5 sent back to back (without waiting for 3probe), then GET → 400', T, async () => {
        const { sid } = await handshake(prefix);
        const c = await ws(prefix, `EIO=4&transport=websocket&sid=${sid}`);
        c.send('2probe');
        c.send('5');
        assert.equal(await c.next(), '3probe');
        const r = await get(prefix, sid);
        assert.equal(r.status, 400, `GET after upgrade: ${r.status} ${r.body}`);
      });
    });
  });
}

describe('Engine.IO echo (/engine.io/)', () => {
  const P = '/engine.io/';

  test('polling: POST "4hello" → "ok", GET → "4hello"', T, async () => {
    const { sid } = await handshake(P);
    const p = await post(P, sid, '4hello');
    assert.equal(p.status, 200);
    assert.equal(p.body, 'ok');
    const r = await get(P, sid);
    assert.equal(r.status, 200);
    assert.equal(r.body, '4hello');
    assert.match(r.headers.get('content-type') || '', /^text\/plain; ?charset=UTF-8$/i);
  });

  test('polling: several packets joined by \\x1e keep their order', T, async () => {
    const { sid } = await handshake(P);
    assert.equal((await post(P, sid, '4test1\x1e4test2\x1e4test3')).body, 'ok');
    assert.equal((await get(P, sid)).body, '4test1\x1e4test2\x1e4test3');
  });

  test('polling: text and binary (b<base64>) packets', T, async () => {
    const { sid } = await handshake(P);
    assert.equal((await post(P, sid, '4hello\x1ebAQIDBA==')).body, 'ok');
    assert.equal((await get(P, sid)).body, '4hello\x1ebAQIDBA==');
  });

  test('polling: UTF-8 text survives byte-exact', T, async () => {
    const { sid } = await handshake(P);
    const s = '4héllo ✓ 😀 \u0000x';
    assert.equal((await post(P, sid, s)).body, 'ok');
    assert.equal((await get(P, sid)).body, s);
  });

  test('polling: two POSTs before a GET are delivered in order in one payload', T, async () => {
    const { sid } = await handshake(P);
    await post(P, sid, '4a');
    await post(P, sid, '4b\x1e4c');
    assert.equal((await get(P, sid)).body, '4a\x1e4b\x1e4c');
  });

  test('polling: a POST answers a parked GET', T, async () => {
    const { sid } = await handshake(P);
    const pending = get(P, sid);
    await sleep(30);
    await post(P, sid, '4wake');
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.body, '4wake');
  });

  test('polling: invalid packet "abc" → 400 (or dropped), and the session is closed', T, async () => {
    const { sid } = await handshake(P);
    const p = await post(P, sid, 'abc').catch(() => null);
    if (p) assert.equal(p.status, 400, `POST abc: ${p.status} ${p.body}`);
    assert.equal((await get(P, sid)).status, 400);
  });

  test('polling: two GETs at once → the first gets "1", the second 400/500, then the session is gone', T, async () => {
    const { sid } = await handshake(P);
    const [a, b] = await Promise.all([
      get(P, sid),
      sleep(5).then(() => get(P, sid, '&t=burst')),
    ]);
    assert.equal(a.status, 200);
    assert.equal(a.body, '1');
    assert.ok([400, 500].includes(b.status), `second GET: ${b.status} ${b.body}`);
    assert.equal((await get(P, sid)).status, 400);
  });

  test('polling: an aborted parked GET closes the session (next GET → 400)', T, async () => {
    const { sid } = await handshake(P);
    const ac = new AbortController();
    const pending = fetch(q(P, eioq(sid)), { signal: ac.signal }).catch(() => {});
    await sleep(5);
    ac.abort();
    await pending;
    const r = await get(P, sid);
    assert.equal(r.status, 400, `GET after abort: ${r.status} ${JSON.stringify(r.body)}`);
  });

  test('polling: an aborted parked GET is noticed even with no further request (socket FIN)', T, async () => {
    const { sid } = await handshake(P);
    const ac = new AbortController();
    const pending = fetch(q(P, eioq(sid)), { signal: ac.signal }).catch(() => {});
    await sleep(20);
    ac.abort();
    await pending;
    await sleep(100);
    assert.equal((await get(P, sid)).status, 400);
  });

  // Repeated: a server that closes at once with the body unread resets the
  // connection, and the client then loses the 413 (intermittently).
  test('polling: POST over maxPayload (1e6+1 bytes) → 413, session closed (8 rounds)', T, async () => {
    for (let i = 0; i < 8; i++) {
      const { sid } = await handshake(P);
      const body = `4${'x'.repeat(1000000)}`;
      const p = await rawHttp('POST', q(P, eioq(sid)), { 'content-type': 'text/plain;charset=UTF-8' }, body)
        .catch((e) => ({ status: `error: ${e.message}`, body: '' }));
      assert.equal(p.status, 413, `round ${i}: POST of ${body.length} bytes: ${p.status} ${p.body}`);
      assert.equal((await get(P, sid)).status, 400, 'the session is closed after 413');
    }
  });

  test('polling: a POST of exactly maxPayload bytes is accepted and echoed', T, async () => {
    const { sid } = await handshake(P);
    const body = `4${'y'.repeat(999999)}`;
    const p = await post(P, sid, body);
    assert.equal(p.status, 200, `POST of ${body.length} bytes: ${p.status} ${p.body.slice(0, 200)}`);
    const r = await get(P, sid);
    assert.equal(r.body.length, body.length);
    assert.ok(r.body === body, 'echo differs');
  });

  test('WebSocket: "4hello" echoed', T, async () => {
    const c = await eioWs(P);
    c.send('4hello');
    assert.equal(await c.next(), '4hello');
  });

  test('WebSocket: binary frame [1,2,3,4] echoed as a binary frame without prefix', T, async () => {
    const c = await eioWs(P);
    c.send(Buffer.from([1, 2, 3, 4]));
    const d = await c.next();
    assert.ok(Buffer.isBuffer(d), `echo is a text frame: ${JSON.stringify(d)}`);
    assert.equal(d.toString('hex'), '01020304');
  });

  test('WebSocket: invalid packet "abc" closes the connection', T, async () => {
    const c = await eioWs(P);
    c.send('abc');
    await c.expectClose(1000, 'after "abc"');
  });

  test('WebSocket: exactly maxPayload is echoed; one byte more → close 1009 (8 rounds)', T, async () => {
    for (let i = 0; i < 8; i++) {
      const c = await eioWs(P);
      const ok = `4${'z'.repeat(999999)}`;
      c.send(ok);
      const d = await c.next(3000);
      assert.ok(d === ok, `echo of a ${ok.length}-byte message: got ${typeof d === 'string' ? d.length : 'binary'} bytes`);
      c.send(`4${'z'.repeat(1000000)}`);
      const info = await c.expectClose(3000, 'after an oversized message');
      assert.equal(info.code, 1009, `round ${i}: close code (1006 = no close frame seen: TCP reset)`);
    }
  });

  test('binary sent over polling comes back over WebSocket after the upgrade, and vice versa', T, async () => {
    const { sid } = await handshake(P);
    assert.equal((await post(P, sid, 'bAQID')).body, 'ok');   // echo queued, no GET parked
    const c = await ws(P, `EIO=4&transport=websocket&sid=${sid}`);
    c.send('2probe');
    assert.equal(await c.next(), '3probe');
    c.send('5');
    const d = await c.next(1000, { skipPings: true });
    assert.ok(Buffer.isBuffer(d), `queued binary arrived as text: ${JSON.stringify(d)}`);
    assert.equal(d.toString('hex'), '010203');
  });

  test('upgrade: then "4hello" is echoed over WS (suite sequence)', T, async () => {
    const { sid } = await handshake(P);
    const c = await ws(P, `EIO=4&transport=websocket&sid=${sid}`);
    c.send('2probe');
    assert.equal(await c.next(), '3probe');
    const r = await get(P, sid);
    assert.equal(r.body, '6');
    c.send('5');
    c.send('4hello');
    assert.equal(await c.next(1000, { skipPings: true }), '4hello');
    assert.equal((await get(P, sid)).status, 400);
  });

  test('upgrade: packets queued on polling before and during the probe move to WS, in order, once', T, async () => {
    const { sid } = await handshake(P);
    assert.equal((await post(P, sid, '4q1\x1e4q2')).body, 'ok');     // queued, no GET parked
    const c = await ws(P, `EIO=4&transport=websocket&sid=${sid}`);
    c.send('2probe');
    assert.equal(await c.next(), '3probe');
    const r = await get(P, sid);                                         // during the probe
    const viaPolling = r.body === '6' ? [] : r.body.split('\x1e').filter((x) => x !== '6');
    assert.equal(r.status, 200);
    assert.equal((await post(P, sid, '4q3')).body, 'ok');               // during the probe, after the GET
    c.send('5');
    c.send('4q4');
    const want = ['4q1', '4q2', '4q3', '4q4'];
    const viaWs = await c.nextN(want.length - viaPolling.length, 1500, { skipPings: true });
    assert.deepEqual([...viaPolling, ...viaWs], want, `polling got ${JSON.stringify(r.body)}, WS got ${JSON.stringify(viaWs)}`);
    await sleep(100);
    const extra = c.frames.map((f) => f.data).filter((x) => x !== '2');
    assert.deepEqual(extra, [], 'duplicated or stray frames after the upgrade');
  });

  test('WebSocket "2probe" on a session opened on WS is not a valid upgrade (ignored or closed, not 3probe)', T, async () => {
    const c = await eioWs(P);
    c.send('2probe');
    const d = await c.next(200).catch(() => null);
    assert.notEqual(d, '3probe');
  });
});

describe('CORS (conformance mode: origin *)', () => {
  const P = '/socket.io/';

  test('GET and POST carry Access-Control-Allow-Origin', T, async () => {
    const h = await rawHttp('GET', q(P, 'EIO=4&transport=polling'), { Origin: 'http://example.test' });
    assert.equal(h.status, 200);
    const acao = h.headers['access-control-allow-origin'];
    assert.ok(acao === '*' || acao === 'http://example.test', `GET ACAO: ${acao}`);
    const sid = JSON.parse(h.body.slice(1)).sid;
    const p = await rawHttp('POST', q(P, eioq(sid)), { Origin: 'http://example.test', 'content-type': 'text/plain;charset=UTF-8' }, '3');
    assert.equal(p.status, 200);
    assert.equal(p.body, 'ok');
    const acao2 = p.headers['access-control-allow-origin'];
    assert.ok(acao2 === '*' || acao2 === 'http://example.test', `POST ACAO: ${acao2}`);
  });

  test('error responses carry Access-Control-Allow-Origin too', T, async () => {
    const r = await rawHttp('GET', q(P, 'EIO=4&transport=polling&sid=nope'), { Origin: 'http://example.test' });
    assert.equal(r.status, 400);
    assert.ok(r.headers['access-control-allow-origin'], `no ACAO on the 400: ${JSON.stringify(r.headers)}`);
    assert.equal(r.body, '{"code":1,"message":"Session ID unknown"}');
    assert.match(r.headers['content-type'] || '', /^application\/json/);
  });

  test('OPTIONS preflight → 204 with methods and the requested headers echoed', T, async () => {
    const r = await rawHttp('OPTIONS', q(P, 'EIO=4&transport=polling'), {
      Origin: 'http://example.test',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type,x-custom',
    });
    assert.equal(r.status, 204, `OPTIONS: ${r.status} ${r.body}`);
    const acao = r.headers['access-control-allow-origin'];
    assert.ok(acao === '*' || acao === 'http://example.test', `ACAO: ${acao}`);
    assert.equal(r.headers['access-control-allow-methods'], 'GET,HEAD,PUT,PATCH,POST,DELETE');
    assert.equal(r.headers['access-control-allow-headers'], 'content-type,x-custom');
    assert.match(r.headers.vary || '', /Access-Control-Request-Headers/i);
    assert.equal(r.body, '');
  });

  test('OPTIONS on a session URL does not disturb the session', T, async () => {
    const { sid } = await handshake(P);
    const r = await rawHttp('OPTIONS', q(P, eioq(sid)), { Origin: 'http://example.test', 'Access-Control-Request-Method': 'POST' });
    assert.equal(r.status, 204);
    assert.equal((await post(P, sid, '40')).body, 'ok');
    const g = await get(P, sid);
    assert.match(g.body, /^40\{"sid":"[^"]+"\}\x1e42\["auth",\{\}\]$/);
  });
});

describe('Socket.IO v5 (/socket.io/)', () => {
  describe('connect', () => {
    test('40 → 40{"sid"} (only sid), then 42["auth",{}]', T, async () => {
      const c = await eioWs('/socket.io/');
      c.send('40');
      const d = await c.next(1000, { skipPings: true });
      assert.ok(d.startsWith('40'), d);
      const h = JSON.parse(d.slice(2));
      assert.deepEqual(Object.keys(h), ['sid']);
      assert.equal(typeof h.sid, 'string');
      assert.notEqual(h.sid, c.open.sid, 'the Socket.IO sid must not be the Engine.IO sid');
      assert.equal(await c.next(1000, { skipPings: true }), '42["auth",{}]');
    });

    test('40{"token":"123"} → auth echoed', T, async () => {
      const c = await eioWs('/socket.io/');
      c.send('40{"token":"123"}');
      assert.match(await c.next(1000, { skipPings: true }), /^40\{"sid":"[^"]+"\}$/);
      assert.equal(await c.next(1000, { skipPings: true }), '42["auth",{"token":"123"}]');
    });

    test('40/custom, → 40/custom,{"sid"} and 42/custom,["auth",{}]', T, async () => {
      const c = await eioWs('/socket.io/');
      c.send('40/custom,');
      const d = await c.next(1000, { skipPings: true });
      assert.ok(d.startsWith('40/custom,'), d);
      assert.deepEqual(Object.keys(JSON.parse(d.slice(10))), ['sid']);
      assert.equal(await c.next(1000, { skipPings: true }), '42/custom,["auth",{}]');
    });

    test('40/custom,{"token":"abc"} → auth echoed on /custom', T, async () => {
      const c = await eioWs('/socket.io/');
      c.send('40/custom,{"token":"abc"}');
      assert.match(await c.next(1000, { skipPings: true }), /^40\/custom,\{"sid":"[^"]+"\}$/);
      assert.equal(await c.next(1000, { skipPings: true }), '42/custom,["auth",{"token":"abc"}]');
    });

    test('40/custom (no trailing comma) is accepted', T, async () => {
      const c = await eioWs('/socket.io/');
      c.send('40/custom');
      assert.match(await c.next(1000, { skipPings: true }), /^40\/custom,\{"sid":"[^"]+"\}$/);
      assert.equal(await c.next(1000, { skipPings: true }), '42/custom,["auth",{}]');
    });

    test('the auth payload is passed through byte-exact (key order, escapes, numbers)', T, async () => {
      const c = await eioWs('/socket.io/');
      const auth = '{"z":1,"a":{"y":[1.50,-0,1e2]},"s":"\\u00e9\\n\\/"}';
      c.send(`40${auth}`);
      assert.match(await c.next(1000, { skipPings: true }), /^40\{"sid":"[^"]+"\}$/);
      assert.equal(await c.next(1000, { skipPings: true }), `42["auth",${auth}]`);
    });

    // Valid JSON that JSON.parse accepts (the reference server connects):
    // an integer beyond 64 bits and a \u0000 escape, both accepted in EVENTs.
    for (const auth of ['{"big":12345678901234567890}', '{"s":"a\\u0000b"}']) {
      test(`CONNECT payload ${auth} is accepted and echoed like it is in events`, T, async () => {
        const c = await eioWs('/socket.io/');
        c.send(`40${auth}`);
        assert.match(await c.next(1000, { skipPings: true }), /^40\{"sid":"[^"]+"\}$/);
        assert.equal(await c.next(1000, { skipPings: true }), `42["auth",${auth}]`);
        c.send(`42["message",${auth}]`);
        assert.equal(await c.next(1000, { skipPings: true }), `42["message-back",${auth}]`);
      });
    }

    test('40/random → exactly 44/random,{"message":"Invalid namespace"}, the connection stays open', T, async () => {
      const c = await eioWs('/socket.io/');
      c.send('40/random');
      assert.equal(await c.next(1000, { skipPings: true }), '44/random,{"message":"Invalid namespace"}');
      c.send('40/random,');
      assert.equal(await c.next(1000, { skipPings: true }), '44/random,{"message":"Invalid namespace"}');
      c.send('40');
      assert.match(await c.next(1000, { skipPings: true }), /^40\{"sid":"[^"]+"\}$/);
      assert.equal(await c.next(1000, { skipPings: true }), '42["auth",{}]');
    });

    test('4abc as the first packet closes the connection', T, async () => {
      const c = await eioWs('/socket.io/');
      c.send('4abc');
      const info = await c.expectClose(1000, 'after 4abc');
      assert.ok(info.at - c.at < 450, `closed only after ${info.at - c.at} ms (ping timeout?)`);
    });

    test('no CONNECT: closed at ~1 s (connectTimeout) even when answering pings', T, async () => {
      const c = await eioWs('/socket.io/');
      const pings = [];
      const done = c.closed;
      for (;;) {
        const d = await c.next(1500).catch(() => null);
        if (d === null) break;
        assert.equal(d, '2');
        pings.push(c.last.at - c.at);
        c.send('3');
      }
      const info = await done;
      within(info.at - c.at, 950, 1300, 'connect timeout close');
      assert.equal(pings.length, 3, `pings before the connect timeout: ${JSON.stringify(pings)}`);
    });

    test('no CONNECT and no pong: closed (suite case)', T, async () => {
      const c = await eioWs('/socket.io/');
      await c.expectClose(1500, 'without CONNECT');
    });

    test('polling: no CONNECT → the session ends at ~1 s even when answering pings', T, async () => {
      const { sid, at } = await handshake('/socket.io/');
      let ended = null;
      while (Date.now() - at < 2000) {
        const r = await get('/socket.io/', sid).catch((e) => ({ status: 'error', body: e.message }));
        if (r.status !== 200 || r.body !== '2') { ended = { r, t: Date.now() - at }; break; }
        await post('/socket.io/', sid, '3');
      }
      assert.ok(ended, 'the session was still alive after 2 s');
      within(ended.t, 950, 1300, `session end (${JSON.stringify(ended.r)})`);
      assert.equal((await get('/socket.io/', sid)).status, 400);
    });
  });

  describe('disconnect', () => {
    test('41 → no reply; the next frame is the ping "2"', T, async () => {
      const c = await sioWs();
      c.send('41');
      assert.equal(await c.next(1000), '2');
    });

    test('40/custom, 41/custom → no reply, then a message on / still gets message-back', T, async () => {
      const c = await sioWs();
      c.send('40/custom');
      assert.match(await c.next(1000, { skipPings: true }), /^40\/custom,\{"sid":"[^"]+"\}$/);
      assert.equal(await c.next(1000, { skipPings: true }), '42/custom,["auth",{}]');
      c.send('41/custom');
      c.send('42["message","message to main namespace"]');
      assert.equal(await c.next(1000, { skipPings: true }), '42["message-back","message to main namespace"]');
    });

    test('after 41, events on / are no longer answered; a new 40 reconnects', T, async () => {
      const c = await sioWs();
      c.send('41');
      c.send('42["message","gone"]');
      await sleep(150);
      assert.deepEqual(c.frames.map((f) => f.data).filter((x) => x !== '2'), [], 'reply to an event on a disconnected namespace');
      c.send('40');
      assert.match(await c.next(1000, { skipPings: true }), /^40\{"sid":"[^"]+"\}$/);
      assert.equal(await c.next(1000, { skipPings: true }), '42["auth",{}]');
      c.send('42["message","back"]');
      assert.equal(await c.next(1000, { skipPings: true }), '42["message-back","back"]');
    });
  });

  describe('messages', () => {
    test('42["message",1,"2",{"3":[true]}] → 42["message-back",1,"2",{"3":[true]}]', T, async () => {
      const c = await sioWs();
      c.send('42["message",1,"2",{"3":[true]}]');
      assert.equal(await c.next(1000, { skipPings: true }), '42["message-back",1,"2",{"3":[true]}]');
    });

    test('arguments are passed through byte-exact', T, async () => {
      const c = await sioWs();
      const args = '{"b":2,"a":1},[1.50,1e3,-0.0],"\\u00e9\\"\\/",null,"é😀",12345678901234567890';
      c.send(`42["message",${args}]`);
      assert.equal(await c.next(1000, { skipPings: true }), `42["message-back",${args}]`);
    });

    test('an event with no arguments', T, async () => {
      const c = await sioWs();
      c.send('42["message"]');
      assert.equal(await c.next(1000, { skipPings: true }), '42["message-back"]');
    });

    test('events keep their order', T, async () => {
      const c = await sioWs();
      const n = 50;
      for (let i = 0; i < n; i++) c.send(`42["message",${i}]`);
      const got = await c.nextN(n, 2000, { skipPings: true });
      assert.deepEqual(got, Array.from({ length: n }, (_, i) => `42["message-back",${i}]`));
    });

    test('BINARY_EVENT with 2 attachments → 452-["message-back",…] then the 2 frames in order', T, async () => {
      const c = await sioWs();
      c.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      c.send(Buffer.from([1, 2, 3]));
      c.send(Buffer.from([4, 5, 6]));
      const [h, b0, b1] = await c.nextN(3, 1000, { skipPings: true });
      assert.equal(h, '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.ok(Buffer.isBuffer(b0) && Buffer.isBuffer(b1), 'attachments must be binary frames');
      assert.equal(b0.toString('hex'), '010203');
      assert.equal(b1.toString('hex'), '040506');
    });

    test('BINARY_EVENT nested placeholders and attachments referenced out of order', T, async () => {
      const c = await sioWs();
      c.send('452-["message",{"x":{"_placeholder":true,"num":1}},[{"_placeholder":true,"num":0}]]');
      c.send(Buffer.from([0xaa]));
      c.send(Buffer.from([0xbb, 0xcc]));
      const [h, b0, b1] = await c.nextN(3, 1000, { skipPings: true });
      assert.equal(h, '452-["message-back",{"x":{"_placeholder":true,"num":1}},[{"_placeholder":true,"num":0}]]');
      assert.equal(Buffer.from(b0).toString('hex'), 'aa');
      assert.equal(Buffer.from(b1).toString('hex'), 'bbcc');
    });

    test('ack: 42456["message-with-ack",1,"2",{"3":[false]}] → 43456[1,"2",{"3":[false]}]', T, async () => {
      const c = await sioWs();
      c.send('42456["message-with-ack",1,"2",{"3":[false]}]');
      assert.equal(await c.next(1000, { skipPings: true }), '43456[1,"2",{"3":[false]}]');
    });

    test('ack id 0 and large ack ids', T, async () => {
      const c = await sioWs();
      c.send('420["message-with-ack","a"]');
      assert.equal(await c.next(1000, { skipPings: true }), '430["a"]');
      c.send('424294967295["message-with-ack"]');
      assert.equal(await c.next(1000, { skipPings: true }), '434294967295[]');
    });

    test('binary ack: 452-789[…] → 462-789[placeholders] then the 2 frames', T, async () => {
      const c = await sioWs();
      c.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      c.send(Buffer.from([1, 2, 3]));
      c.send(Buffer.from([4, 5, 6]));
      const [h, b0, b1] = await c.nextN(3, 1000, { skipPings: true });
      assert.equal(h, '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.equal(Buffer.from(b0).toString('hex'), '010203');
      assert.equal(Buffer.from(b1).toString('hex'), '040506');
    });

    test('/custom: events and acks carry the namespace', T, async () => {
      const c = await sioWs();
      c.send('40/custom,');
      await c.nextN(2, 1000, { skipPings: true });
      c.send('42/custom,["message","x",2]');
      assert.equal(await c.next(1000, { skipPings: true }), '42/custom,["message-back","x",2]');
      c.send('42/custom,17["message-with-ack","y"]');
      assert.equal(await c.next(1000, { skipPings: true }), '43/custom,17["y"]');
      c.send('451-/custom,["message",{"_placeholder":true,"num":0}]');
      c.send(Buffer.from([7]));
      const [h, b] = await c.nextN(2, 1000, { skipPings: true });
      assert.equal(h, '451-/custom,["message-back",{"_placeholder":true,"num":0}]');
      assert.equal(Buffer.from(b).toString('hex'), '07');
      // / is still served on the same connection.
      c.send('42["message","main"]');
      assert.equal(await c.next(1000, { skipPings: true }), '42["message-back","main"]');
    });

    for (const [name, pkt] of [
      ['unknown packet type 4abc', '4abc'],
      ['non-array payload 42{}', '42{}'],
      ['invalid ack id 42abc[…]', '42abc["message-with-ack",1,"2",{"3":[false]}]'],
      ['truncated JSON', '42["message",'],
      ['event name not a string', '42[1,2]'],
      ['unknown packet type 9', '49'],
    ]) {
      test(`malformed packet closes the connection: ${name}`, T, async () => {
        const c = await sioWs();
        c.send(pkt);
        const info = await c.expectClose(1000, `after ${pkt}`);
        assert.ok(info.at - c.at < 450, `closed only ${info.at - c.at} ms after open (ping timeout?)`);
      });
    }

    test('a binary frame when no attachment is expected closes the connection', T, async () => {
      const c = await sioWs();
      c.send(Buffer.from([1, 2, 3]));
      await c.expectClose(1000, 'after an unexpected binary frame');
    });
  });

  describe('Socket.IO over polling', () => {
    const P = '/socket.io/';

    test('CONNECT, auth, event and ack over polling', T, async () => {
      const { sid } = await handshake(P);
      assert.equal((await post(P, sid, '40{"token":"p"}')).body, 'ok');
      const g = await get(P, sid);
      assert.match(g.body, /^40\{"sid":"[^"]+"\}\x1e42\["auth",\{"token":"p"\}\]$/);
      assert.equal((await post(P, sid, '42["message",1]\x1e421["message-with-ack",2]')).body, 'ok');
      assert.equal((await get(P, sid)).body, '42["message-back",1]\x1e431[2]');
    });

    test('BINARY_EVENT over polling: b<base64> attachments right after the header, in order', T, async () => {
      const { sid } = await handshake(P);
      await post(P, sid, '40');
      await get(P, sid);
      const r = await post(P, sid, '452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]\x1ebAQID\x1ebBAUG');
      assert.equal(r.body, 'ok');
      assert.equal((await get(P, sid)).body,
        '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]\x1ebAQID\x1ebBAUG');
    });

    test('attachments split across two POSTs', T, async () => {
      const { sid } = await handshake(P);
      await post(P, sid, '40');
      await get(P, sid);
      await post(P, sid, '452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]\x1ebAQID');
      await post(P, sid, 'bBAUG');
      assert.equal((await get(P, sid)).body,
        '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]\x1ebAQID\x1ebBAUG');
    });

    test('two namespaces on one polling session', T, async () => {
      const { sid } = await handshake(P);
      await post(P, sid, '40\x1e40/custom,{"k":1}');
      const g = await get(P, sid);
      assert.match(g.body, /^40\{"sid":"[^"]+"\}\x1e42\["auth",\{\}\]\x1e40\/custom,\{"sid":"[^"]+"\}\x1e42\/custom,\["auth",\{"k":1\}\]$/);
      await post(P, sid, '42/custom,["message","c"]\x1e42["message","m"]');
      assert.equal((await get(P, sid)).body, '42/custom,["message-back","c"]\x1e42["message-back","m"]');
    });

    test('40/random over polling → 44 and the session stays', T, async () => {
      const { sid } = await handshake(P);
      await post(P, sid, '40/random,');
      assert.equal((await get(P, sid)).body, '44/random,{"message":"Invalid namespace"}');
      await post(P, sid, '40');
      assert.match((await get(P, sid)).body, /^40\{"sid":"[^"]+"\}\x1e42\["auth",\{\}\]$/);
    });

    test('malformed Socket.IO packet over polling closes the session', T, async () => {
      const { sid } = await handshake(P);
      await post(P, sid, '40');
      await get(P, sid);
      await post(P, sid, '42{}').catch(() => null);
      const r = await get(P, sid).catch((e) => ({ status: 'error', body: e.message }));
      assert.ok(r.status === 400 || (r.status === 200 && /^(1|6)$/.test(r.body)), `GET after 42{}: ${r.status} ${JSON.stringify(r.body)}`);
      if (r.status === 200) assert.equal((await get(P, sid)).status, 400);
    });

    test('upgrade with a CONNECT in flight: replies are not lost or duplicated', T, async () => {
      const { sid } = await handshake(P);
      await post(P, sid, '40');
      const c = await ws(P, `EIO=4&transport=websocket&sid=${sid}`);
      c.send('2probe');
      assert.equal(await c.next(), '3probe');
      await post(P, sid, '42["message","during-probe"]');
      const g = await get(P, sid);
      const viaPolling = g.body.split('\x1e').filter((x) => x !== '6');
      c.send('5');
      c.send('42["message","after"]');
      const want = ['40{"sid":', '42["auth",{}]', '42["message-back","during-probe"]', '42["message-back","after"]'];
      const viaWs = await c.nextN(want.length - viaPolling.length, 1500, { skipPings: true });
      const all = [...viaPolling, ...viaWs];
      assert.equal(all.length, 4, JSON.stringify(all));
      assert.ok(all[0].startsWith(want[0]), JSON.stringify(all));
      assert.deepEqual(all.slice(1), want.slice(1));
      await sleep(100);
      assert.deepEqual(c.frames.map((f) => f.data).filter((x) => x !== '2'), [], 'duplicates after the upgrade');
    });
  });
});

describe('/echo (plain WebSocket echo)', () => {
  test('text and binary echoed unchanged', T, async () => {
    const c = await ws('/echo', null);
    c.send('hello ✓');
    assert.equal(await c.next(), 'hello ✓');
    c.send(Buffer.from([0, 1, 2, 255]));
    const d = await c.next();
    assert.ok(Buffer.isBuffer(d));
    assert.equal(d.toString('hex'), '000102ff');
    c.send('');
    assert.equal(await c.next(), '');
  });
});
