'use strict';
// tests/integration/clients.test.js — the official clients against
// `belfry-gateway --conformance`: npm socket.io-client v4 (in process) and the
// Debian python-socketio client (tests/integration/py/conformance_client.py,
// run with /usr/bin/python3), each with default options (polling, then the
// upgrade to WebSocket), polling only and WebSocket only.
//
// Design: one gateway for the file, started on a free loopback port and
// stopped by PID through the harness; a test that leaves it dead fails with
// its log tail. Every JS scenario uses one Manager (one Engine.IO connection)
// with sockets on / and /custom, records every event each socket receives, and
// checks: the auth payload echoed per namespace, events with several
// arguments, acks (emitWithAck and callbacks), binary both ways (event and
// ack), a burst of events sent right after connecting — with default options
// that is while the upgrade probe is in flight, so nothing may be lost or
// duplicated on the hand-over — and an unknown namespace refused with
// connect_error "Invalid namespace" while the connection keeps working.

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Manager } = require('socket.io-client');
const { BUILD, ROOT, Proc, freePort, sleep } = require('./lib/harness');

const T = { timeout: 30000 };
const WAIT = 5000;

let gw = null;
let deaths = 0;

async function startGateway() {
  const port = await freePort();
  const pub = await freePort();
  const proc = new Proc('gateway-conformance', path.join(BUILD, 'belfry-gateway'), [
    '--conformance', '--listen', `127.0.0.1:${port}`, '--broker-pub', `tcp://127.0.0.1:${pub}`,
    '--log-level', process.env.BELFRY_TEST_LOG_LEVEL || 'debug',
  ], { logFile: path.join(ROOT, 'tests', 'out', 'clients', `gateway-${port}.log`) });
  await proc.waitFor(/event=ready/, 15000);
  gw = { proc, port, url: `http://127.0.0.1:${port}` };
}

const managers = [];
before(startGateway);
afterEach(async () => {
  for (const m of managers.splice(0)) m.engine?.close?.();
  if (gw && !gw.proc.alive) {
    const info = JSON.stringify(gw.proc.exitInfo);
    const tail = gw.proc.tail(40);
    deaths++;
    await startGateway();
    throw new Error(`the gateway died during this test (${info}); last log lines:\n${tail}`);
  }
});
after(async () => {
  for (const m of managers.splice(0)) m.engine?.close?.();
  if (gw) {
    const r = await gw.proc.stop('SIGTERM');
    const tail = gw.proc.tail(30);
    assert.ok(!r.forced && (r.code === 0 || r.code === null), `gateway stop: ${JSON.stringify(r)}\n${tail}`);
    assert.ok(!/AddressSanitizer|LeakSanitizer|runtime error:/.test(tail), `sanitizer report:\n${tail}`);
  }
  assert.equal(deaths, 0, `the gateway died ${deaths} time(s) during this file`);
});

// ---------------------------------------------------------------------------
// socket.io-client helpers.
function newManager(transports) {
  const m = new Manager(gw.url, {
    reconnection: false,
    timeout: WAIT,
    ...(transports ? { transports } : {}),
  });
  managers.push(m);
  return m;
}

// A socket on namespace ns with every received event recorded.
function sock(m, ns, auth) {
  const s = m.socket(ns, auth ? { auth } : {});
  s.events = [];
  s.waiters = [];
  s.onAny((event, ...args) => {
    s.events.push({ event, args });
    s.waiters = s.waiters.filter((w) => !w());
  });
  return s;
}

// Resolves with the first n events named `event` (bounded wait).
function eventsNamed(s, event, n = 1, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const got = s.events.filter((e) => e.event === event);
      if (got.length >= n) { clearTimeout(timer); resolve(got.slice(0, n)); return true; }
      return false;
    };
    const timer = setTimeout(() => {
      s.waiters = s.waiters.filter((w) => w !== check);
      reject(new Error(`${s.nsp}: ${s.events.filter((e) => e.event === event).length}/${n} '${event}' events within ${ms} ms; got ${JSON.stringify(s.events).slice(0, 800)}`));
    }, ms);
    if (!check()) s.waiters.push(check);
  });
}

function connected(s, ms = WAIT) {
  if (s.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${s.nsp}: not connected within ${ms} ms`)), ms);
    s.once('connect', () => { clearTimeout(t); resolve(); });
    s.once('connect_error', (e) => { clearTimeout(t); reject(new Error(`${s.nsp}: connect_error ${e && e.message}`)); });
  });
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(t));
}

const hex = (b) => Buffer.from(b instanceof ArrayBuffer ? new Uint8Array(b) : b).toString('hex');
const isBin = (b) => Buffer.isBuffer(b) || b instanceof ArrayBuffer || ArrayBuffer.isView(b);

// ---------------------------------------------------------------------------
const MODES = [
  { name: 'default options (polling, then upgrade)', transports: null, final: 'websocket', py: 'default' },
  { name: "transports ['polling']", transports: ['polling'], final: 'polling', py: 'polling' },
  { name: "transports ['websocket']", transports: ['websocket'], final: 'websocket', py: 'websocket' },
];

for (const mode of MODES) {
  describe(`socket.io-client v4, ${mode.name}`, () => {
    test('an event name the gateway cannot take (a NUL in it) gets an error ack; the connection stays', T, async () => {
      const m = newManager(mode.transports);
      const s = sock(m, '/');
      await connected(s);
      assert.deepEqual(await s.timeout(WAIT).emitWithAck('a\u0000b', 1), { error: 'event names may not contain NUL' });
      assert.equal(await s.timeout(WAIT).emitWithAck('message-with-ack', 'still'), 'still');
    });

    test('server -> client ack: the server asks, the client answers (text and binary), the answer comes back', T, async () => {
      const m = newManager(mode.transports);
      const s = sock(m, '/custom');
      const asked = [];
      s.on('ack-request', (...args) => {
        const cb = args.pop();
        asked.push(args);
        cb('answer', args[0], Buffer.from([7, 7]));
      });
      await connected(s);
      s.emit('request-ack', 41, { q: 'why' });
      const [resp] = await eventsNamed(s, 'ack-response');
      assert.deepEqual(asked, [[41, { q: 'why' }]], 'the ack request carried the arguments');
      assert.equal(resp.args.length, 3);
      assert.equal(resp.args[0], 'answer');
      assert.equal(resp.args[1], 41);
      assert.ok(isBin(resp.args[2]) && hex(resp.args[2]) === '0707', 'the binary answer came back');
    });

    test('auth, two namespaces on one connection, events, acks, binary, burst across the upgrade', T, async () => {
      const m = newManager(mode.transports);
      const main = sock(m, '/', { token: 'main-token' });
      const cust = sock(m, '/custom', { token: 'custom-token', n: 1 });
      await Promise.all([connected(main), connected(cust)]);

      // A burst right after CONNECT (during the probe with default options).
      const N = 30;
      for (let i = 0; i < N; i++) main.emit('message', 'burst', i);

      // Auth payload echoed per namespace, each on its own socket.
      const [a1] = await eventsNamed(main, 'auth');
      assert.deepEqual(a1.args, [{ token: 'main-token' }]);
      const [a2] = await eventsNamed(cust, 'auth');
      assert.deepEqual(a2.args, [{ token: 'custom-token', n: 1 }]);
      assert.notEqual(main.id, cust.id, 'each namespace has its own Socket.IO id');
      assert.equal(main.io, cust.io, 'both namespaces share one Manager');

      const backs = await eventsNamed(main, 'message-back', N, 8000);
      assert.deepEqual(backs.map((e) => e.args), Array.from({ length: N }, (_, i) => ['burst', i]),
        'the burst comes back complete and in order');

      // With default options the upgrade completes.
      if (mode.final === 'websocket' && m.engine.transport.name !== 'websocket') {
        await withTimeout(new Promise((r) => m.engine.once('upgrade', r)), WAIT, 'upgrade');
      }
      assert.equal(m.engine.transport.name, mode.final, 'transport in use');

      // No duplicates of the burst after the hand-over.
      await sleep(200);
      assert.equal(main.events.filter((e) => e.event === 'message-back').length, N, 'duplicated message-back after the upgrade');

      // Events with several arguments, routed to their namespace only.
      main.events.length = 0; cust.events.length = 0;
      const args = [1, '2', { 3: [true] }, null, 'é😀', [1.5, -2], { nested: { deep: 'x' } }];
      main.emit('message', ...args);
      cust.emit('message', 'to-custom');
      const [mb] = await eventsNamed(main, 'message-back');
      assert.deepEqual(mb.args, args);
      const [cb] = await eventsNamed(cust, 'message-back');
      assert.deepEqual(cb.args, ['to-custom']);
      await sleep(100);
      assert.equal(main.events.length, 1, `main saw: ${JSON.stringify(main.events)}`);
      assert.equal(cust.events.length, 1, `custom saw: ${JSON.stringify(cust.events)}`);

      // Acks: emitWithAck resolves with the first argument; a callback gets all.
      assert.equal(await withTimeout(main.emitWithAck('message-with-ack', 'first', 2), WAIT, 'emitWithAck'), 'first');
      const all = await withTimeout(new Promise((r) => main.emit('message-with-ack', 1, { a: 2 }, (...a) => r(a))), WAIT, 'ack callback');
      assert.deepEqual(all, [1, { a: 2 }]);
      assert.equal(await withTimeout(cust.emitWithAck('message-with-ack', 'c'), WAIT, 'emitWithAck on /custom'), 'c');
      const viaTimeout = await withTimeout(main.timeout(WAIT).emitWithAck('message-with-ack', 'timed'), WAIT + 500, 'timeout().emitWithAck');
      assert.equal(viaTimeout, 'timed');

      // Binary both ways: an event with nested buffers, and a binary ack.
      main.events.length = 0;
      main.emit('message', Buffer.from([1, 2, 3]), { nested: Buffer.from([4, 5]) }, 'txt');
      const [bb] = await eventsNamed(main, 'message-back');
      assert.equal(bb.args.length, 3);
      assert.ok(isBin(bb.args[0]), `first arg is not binary: ${JSON.stringify(bb.args[0])}`);
      assert.equal(hex(bb.args[0]), '010203');
      assert.ok(isBin(bb.args[1].nested), 'nested arg is not binary');
      assert.equal(hex(bb.args[1].nested), '0405');
      assert.equal(bb.args[2], 'txt');
      const back = await withTimeout(main.emitWithAck('message-with-ack', Buffer.from([9, 8, 7])), WAIT, 'binary ack');
      assert.ok(isBin(back), `binary ack is not binary: ${JSON.stringify(back)}`);
      assert.equal(hex(back), '090807');
      const big = Buffer.alloc(200000, 0xab);
      const bigBack = await withTimeout(cust.emitWithAck('message-with-ack', big), WAIT, 'large binary ack');
      assert.equal(Buffer.compare(Buffer.from(bigBack), big), 0, 'a 200 kB attachment came back altered');

      // Leaving a namespace keeps the other one working on the same connection.
      cust.disconnect();
      assert.equal(await withTimeout(main.emitWithAck('message-with-ack', 'still'), WAIT, 'after leaving /custom'), 'still');
      main.disconnect();
    });

    test('unknown namespace: connect_error "Invalid namespace", the connection keeps serving /', T, async () => {
      const m = newManager(mode.transports);
      const main = sock(m, '/');
      await connected(main);
      const bad = sock(m, '/random');
      const err = await withTimeout(new Promise((resolve, reject) => {
        bad.once('connect', () => reject(new Error('/random connected')));
        bad.once('connect_error', resolve);
      }), WAIT, 'connect_error');
      assert.equal(err.message, 'Invalid namespace');
      assert.equal(bad.connected, false);
      assert.equal(await withTimeout(main.emitWithAck('message-with-ack', 'alive'), WAIT, 'after connect_error'), 'alive');

      // And as the only namespace of a fresh connection.
      const m2 = newManager(mode.transports);
      const only = sock(m2, '/random');
      const err2 = await withTimeout(new Promise((resolve, reject) => {
        only.once('connect', () => reject(new Error('/random connected')));
        only.once('connect_error', resolve);
      }), WAIT, 'connect_error on a fresh connection');
      assert.equal(err2.message, 'Invalid namespace');
      main.disconnect();
    });

    test('events written every 2 ms from the Engine.IO open through the upgrade: each once, in order', T, async () => {
      const m = newManager(mode.transports);
      const s = sock(m, '/');
      const N = 60;
      const sent = new Set();
      m.once('open', () => {
        // Raw Socket.IO EVENTs through the client's own Engine.IO socket,
        // starting right behind its CONNECT (same write buffer), so some go
        // over polling while the probe is in flight and some over WebSocket.
        let i = 0;
        const tick = () => {
          if (i >= N || !m.engine) return;
          sent.add(m.engine.transport.name);
          m.engine.send(`2["message","seq",${i++}]`);
          setTimeout(tick, 2);
        };
        tick();
      });
      await connected(s);
      const backs = await eventsNamed(s, 'message-back', N, 8000);
      assert.deepEqual(backs.map((e) => e.args[1]), Array.from({ length: N }, (_, i) => i));
      await sleep(200);
      assert.equal(s.events.filter((e) => e.event === 'message-back').length, N, 'duplicates');
      if (mode.transports === null) {
        assert.deepEqual([...sent].sort(), ['polling', 'websocket'], 'the sequence did not straddle the upgrade');
      }
      s.disconnect();
    });

    test('connect without auth: the auth event carries {}', T, async () => {
      const m = newManager(mode.transports);
      const s = sock(m, '/');
      await connected(s);
      const [a] = await eventsNamed(s, 'auth');
      assert.deepEqual(a.args, [{}]);
      s.disconnect();
    });
  });
}

// Busy polling clients: the ping is queued while no GET is parked and reaches
// the client late; the client keeps POSTing packets. Like the Node server, the
// gateway must not drop such a session for a late pong while packets arrive.
test("socket.io-client, transports ['polling']: 8 busy clients (event every 2 ms for ~1.5 s) keep their sessions", T, async () => {
  const N = 600;
  const run = async (k) => {
    const m = newManager(['polling']);
    const s = sock(m, '/');
    const closes = [];
    m.once('open', () => {
      m.engine.on('close', (reason) => closes.push(reason));
      let i = 0;
      const tick = () => {
        if (i >= N || !m.engine || m.engine.readyState !== 'open') return;
        m.engine.send(`2["message","seq",${i++}]`);
        setTimeout(tick, 2);
      };
      tick();
    });
    await connected(s);
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && closes.length === 0 && s.events.filter((e) => e.event === 'message-back').length < N) await sleep(50);
    const got = s.events.filter((e) => e.event === 'message-back').length;
    const lost = [...closes];   // before our own disconnect adds "forced close"
    s.disconnect();
    return { k, got, closes: lost };
  };
  const res = await Promise.all(Array.from({ length: 8 }, (_, k) => run(k)));
  const bad = res.filter((r) => r.got !== N || r.closes.length);
  assert.deepEqual(bad, [], `clients that lost their session or events (of ${N}): ${JSON.stringify(bad)}`);
});

// ---------------------------------------------------------------------------
// python-socketio (Debian 5.7.2).
function runPy(mode) {
  return new Promise((resolve) => {
    const child = spawn(process.env.BELFRY_TEST_PYTHON || '/usr/bin/python3',
      [path.join(__dirname, 'py', 'conformance_client.py'), '--url', gw.url, '--transports', mode],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; if (err.length > 65536) err = err.slice(-32768); });
    const killer = setTimeout(() => child.kill('SIGKILL'), 25000);
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      const lines = [];
      for (const l of out.split('\n')) {
        if (!l) continue;
        try { lines.push(JSON.parse(l)); } catch (_) { lines.push({ type: 'unparsable', line: l }); }
      }
      resolve({ code, signal, lines, stderr: err });
    });
  });
}

for (const mode of MODES) {
  describe(`python-socketio, ${mode.name}`, () => {
    test('auth, two namespaces, events, acks, binary, unknown namespace', T, async () => {
      const r = await runPy(mode.py);
      const ctx = `\nclient output:\n${r.lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${r.stderr.slice(-3000)}`;
      const of = (type) => r.lines.filter((l) => l.type === type);
      assert.deepEqual(of('error'), [], `errors${ctx}`);
      assert.equal(r.code, 0, `exit ${r.code}/${r.signal}${ctx}`);
      assert.ok(of('done').length === 1, `scenario did not finish${ctx}`);
      const conn = of('connected')[0];
      assert.deepEqual(conn.namespaces, ['/', '/custom'], ctx);

      const ev = (ns, name) => r.lines.filter((l) => l.type === 'event' && l.ns === ns && l.event === name).map((l) => l.args);
      assert.deepEqual(ev('/', 'auth'), [[{ token: 'py-token', n: 7 }]], `auth on /${ctx}`);
      assert.deepEqual(ev('/custom', 'auth'), [[{ token: 'py-token', n: 7 }]], `auth on /custom${ctx}`);
      assert.deepEqual(ev('/', 'message-back'), [
        [1, '2', { 3: [true] }, null, 'é😀'],
        [{ $bytes: '010203' }, { nested: { $bytes: '0405' } }, 'txt'],
      ], `message-back on /${ctx}`);
      assert.deepEqual(ev('/custom', 'message-back'), [['to-custom']], `message-back on /custom${ctx}`);

      const ack = (name) => of('ack').find((a) => a.name === name)?.value;
      assert.equal(ack('one'), 'first', ctx);
      assert.deepEqual(ack('several'), [1, { a: 2 }], ctx);
      assert.equal(ack('custom'), 'c', ctx);
      assert.deepEqual(ack('binary'), { $bytes: '090807' }, ctx);
      assert.equal(ack('after'), 'still-here', `the connection after the refused namespace${ctx}`);
      assert.deepEqual(ev('/', 'ack-response'), [['from-py', 'x', 5]],
        `server -> client ack answered by a python handler${ctx}`);

      const ce = of('connect_error').find((l) => l.ns === '/random');
      assert.ok(ce, `no connect_error for /random${ctx}`);
      assert.deepEqual(ce.data, { message: 'Invalid namespace' }, ctx);
      assert.equal(of('refused').length, 1, ctx);
      assert.equal(of('transport')[0]?.value, mode.final, `transport in use${ctx}`);
    });
  });
}
