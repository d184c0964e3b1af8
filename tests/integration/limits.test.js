'use strict';
// tests/integration/limits.test.js — every gateway limit exceeded with a real
// client: the documented reaction, the counter in GET /metrics, and other
// clients unaffected (a bystander on the same gateway still receives a row
// inserted while the limit is being hit).
//
// Design: one cluster (PostgreSQL, one broker) and one gateway per limit,
// started with that limit set low (Cluster.startGateway with the extra flags).
// Limits and their reactions (belfry-gateway --help):
//   --max-connections       extra TCP connections closed at once
//   --max-conn-per-ip       extra connections from one address closed; other
//                           addresses (127.0.0.x sources) are fine
//   --max-head              431 for an oversized request head
//   --handshake-timeout-ms  a request that does not arrive in time (slowloris,
//                           idle or trickling) is closed
//   --max-payload           413 for a polling POST, close 1009 on WebSocket
//   --max-rooms             join beyond it -> error ack "too many rooms"
//   --events-per-sec        beyond it (bursts of twice that) -> error ack
//                           "rate limit exceeded"
//   --max-inflight          beyond it -> error ack "too many requests in
//                           flight" (the broker is held with SIGSTOP so its
//                           requests stay in flight; the gateway keeps the
//                           leader for 3 s without pings)
//   --max-output            a client that stops reading is disconnected at its
//                           buffer limit while a broadcast flows
// Refusals are counted in belfry_gateway_limit_refusals_total{limit=...},
// slow consumers in belfry_gateway_slow_consumer_disconnects_total; oversized
// heads and payloads in belfry_gateway_protocol_errors_total.

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { io } = require('socket.io-client');
const { Cluster, withLogs, SLOW, sleep } = require('./lib/harness');
const { connect, closeAll, DEFAULT_WAIT } = require('./lib/clients');
const raw = require('./lib/rawws');

const T = { timeout: 120000 * SLOW };

function get(port, path, { headers = {}, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, localAddress, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

// GET /metrics -> Map(name{labels} -> number)
async function metrics(port, localAddress) {
  const r = await get(port, '/metrics', { localAddress });
  assert.equal(r.status, 200, `GET /metrics -> ${r.status}`);
  const m = new Map();
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}
const refusals = (m, limit) => m.get(`belfry_gateway_limit_refusals_total{limit="${limit}"}`) ?? NaN;

// A socket.io-client with an ack helper: emitAck(event, ...args) -> ack args[0].
function emitAck(client, event, ...args) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${client.label}: no ack for '${event}' within ${DEFAULT_WAIT} ms`)), DEFAULT_WAIT);
    client.socket.emit(event, ...args, (res) => { clearTimeout(t); resolve(res); });
  });
}

// The bystander receives a row inserted now.
async function bystanderReceives(c, client, user) {
  const n = crypto.randomBytes(4).toString('hex');
  await c.insert({ room: `user_${user}`, event: 'bystander', payload: { nonce: n } });
  await client.waitFor((e) => e.event === 'bystander' && e.args[0]?.nonce === n, DEFAULT_WAIT, `row ${n} for the bystander`);
}

// Waits until the gateway's open-connection gauge is at most n.
async function connectionsAtMost(port, n, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    // the scrape itself is one connection; while the gateway has not yet
    // seen the closes, a scrape over --max-connections is refused: retry
    let open = Infinity;
    try { open = (await metrics(port)).get('belfry_gateway_connections'); } catch (e) { if (Date.now() > deadline) throw e; }
    if (open <= n + 1) return open;
    if (Date.now() > deadline) throw new Error(`still ${open} connections open (want <= ${n + 1} incl. the scrape)`);
    await sleep(100);
  }
}

describe('limits', () => {
  let c;
  let next = 0;
  const gateway = async (args) => {
    c.gatewayArgs = args;
    return c.startGateway(next++);
  };
  before(async () => {
    c = await Cluster.start({ name: 'limits', gateways: 0 });
  });
  afterEach(() => closeAll());
  after(async () => { await closeAll(); if (c) await c.stop(); });

  test('--max-connections: connections beyond the limit are closed at once; the others keep receiving', T, withLogs(async () => {
    const g = await gateway(['--max-connections', '3']);
    await c.waitLeader();
    const by = await connect(g.url, { token: c.token('mc_by'), label: 'bystander' });
    const idle = [];
    for (let i = 0; i < 2; i++) {
      const s = require('node:net').connect({ host: '127.0.0.1', port: g.port });
      await new Promise((r) => s.once('connect', r));
      s.on('error', () => {});
      idle.push(s);
    }
    await sleep(100);
    // connection 4: closed without an answer
    const r = await raw.rawHttp(g.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000 });
    assert.ok(r.closed, `the connection over the limit was not closed (got ${JSON.stringify(r.data)})`);
    assert.ok(!/^HTTP\/1\.1 200/.test(r.data), `the connection over the limit was served: ${JSON.stringify(r.data)}`);
    // a socket.io client over the limit is refused too
    await assert.rejects(connect(g.url, { token: c.token('mc_late'), label: 'over the limit', timeout: 3000 }));
    await bystanderReceives(c, by, 'mc_by');
    for (const s of idle) s.destroy();
    await connectionsAtMost(g.port, 1);
    const m = await metrics(g.port);
    assert.ok(refusals(m, 'max_connections') >= 2, `limit_refusals{max_connections} = ${refusals(m, 'max_connections')}`);
    // room again below the limit
    const late = await connect(g.url, { token: c.token('mc_late'), label: 'after' });
    await bystanderReceives(c, late, 'mc_late');
  }));

  test('--max-conn-per-ip: one address is capped, other addresses are served', T, withLogs(async () => {
    const g = await gateway(['--max-conn-per-ip', '2']);
    await c.waitLeader();
    // (127.0.0.1 may still hold the harness's keep-alive health check)
    const byIo = io(g.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token: c.token('ip_by') }, localAddress: '127.0.0.4' });
    await new Promise((resolve, reject) => { byIo.once('connect', resolve); byIo.once('connect_error', reject); });
    const byGot = [];
    byIo.on('bystander', (p) => byGot.push(p?.nonce));
    const held = [];
    for (let i = 0; i < 2; i++) {
      const s = require('node:net').connect({ host: '127.0.0.1', port: g.port, localAddress: '127.0.0.2' });
      await new Promise((r, j) => { s.once('connect', r); s.once('error', j); });
      s.on('error', () => {});
      held.push(s);
    }
    await sleep(100);
    const r = await raw.rawHttp(g.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { localAddress: '127.0.0.2', timeoutMs: 3000 });
    assert.ok(r.closed && !/^HTTP\/1\.1 200/.test(r.data), `a third connection from 127.0.0.2 was served: ${JSON.stringify(r)}`);
    // another address: a real client connects and receives
    const other = io(g.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token: c.token('ip_other') }, localAddress: '127.0.0.3' });
    try {
      await new Promise((resolve, reject) => { other.once('connect', resolve); other.once('connect_error', reject); });
      const n = crypto.randomBytes(4).toString('hex');
      const got = new Promise((resolve) => other.on('bystander', (p) => { if (p?.nonce === n) resolve(); }));
      await c.insert({ room: 'user_ip_other', event: 'bystander', payload: { nonce: n } });
      assert.ok(await Promise.race([got.then(() => true), sleep(DEFAULT_WAIT).then(() => false)]), 'the client from 127.0.0.3 got no row');
    } finally { other.disconnect(); }
    const n4 = crypto.randomBytes(4).toString('hex');
    await c.insert({ room: 'user_ip_by', event: 'bystander', payload: { nonce: n4 } });
    for (let i = 0; i < 100 && !byGot.includes(n4); i++) await sleep(100);
    byIo.disconnect();
    assert.ok(byGot.includes(n4), 'the bystander from 127.0.0.4 got no row');
    const m = await metrics(g.port, '127.0.0.5');
    assert.ok(refusals(m, 'max_conn_per_ip') >= 1, `limit_refusals{max_conn_per_ip} = ${refusals(m, 'max_conn_per_ip')}`);
    for (const s of held) s.destroy();
    await sleep(200);
    const r2 = await raw.rawHttp(g.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { localAddress: '127.0.0.2', timeoutMs: 3000 });
    assert.match(r2.data, /^HTTP\/1\.1 200/, '127.0.0.2 is not served again after its connections closed');
  }));

  test('--max-head: an oversized request head -> 431; the others keep receiving', T, withLogs(async () => {
    const g = await gateway(['--max-head', '1024']);
    await c.waitLeader();
    const by = await connect(g.url, { token: c.token('mh_by'), label: 'bystander' });
    const before = await metrics(g.port);
    const head = `GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(2000)}\r\n\r\n`;
    const r = await raw.rawHttp(g.port, head, { timeoutMs: 3000 });
    assert.match(r.data, /^HTTP\/1\.1 431 /, `expected 431, got ${JSON.stringify(r.data.slice(0, 200))}`);
    assert.ok(r.closed, 'the connection stays open after 431');
    // a head that never ends (no blank line) is refused as well once past the limit
    const r2 = await raw.rawHttp(g.port, `GET / HTTP/1.1\r\n${'X-A: b\r\n'.repeat(200)}`, { timeoutMs: 3000 });
    assert.match(r2.data, /^HTTP\/1\.1 431 /, `endless head: expected 431, got ${JSON.stringify(r2.data.slice(0, 200))}`);
    await bystanderReceives(c, by, 'mh_by');
    const m = await metrics(g.port);
    const counted = m.get('belfry_gateway_protocol_errors_total') - before.get('belfry_gateway_protocol_errors_total');
    assert.ok(counted >= 2, `oversized heads not counted (protocol_errors_total +${counted})`);
  }));

  test('--handshake-timeout-ms: slowloris clients (idle or trickling headers) are closed in time; the others keep receiving', T, withLogs(async () => {
    const g = await gateway(['--handshake-timeout-ms', '1000']);
    await c.waitLeader();
    const by = await connect(g.url, { token: c.token('hs_by'), label: 'bystander' });
    // idle after a partial request line
    const idle = raw.rawHttp(g.port, 'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost', { timeoutMs: 6000 });
    // trickling: one header byte every 200 ms, for up to 6 s
    const trickle = `GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'z'.repeat(40)}`.split('');
    const slow = raw.rawHttp(g.port, trickle, { delayMs: 200, timeoutMs: 6000 });
    await sleep(500);
    await bystanderReceives(c, by, 'hs_by');
    const [ri, rs] = await Promise.all([idle, slow]);
    assert.ok(ri.closed && ri.ms < 1000 + 1500 * SLOW, `an idle partial request was not closed in time (closed=${ri.closed}, ${ri.ms} ms)`);
    assert.ok(rs.closed && rs.ms < 1000 + 1500 * SLOW,
      `a client trickling its headers (1 byte / 200 ms) was not closed within the 1000 ms handshake timeout (closed=${rs.closed} after ${rs.ms} ms): the timeout restarts with every byte read`);
  }));

  test('--max-payload: a polling POST over it -> 413, a WebSocket message over it -> close 1009; the others keep receiving', T, withLogs(async () => {
    const g = await gateway(['--max-payload', '4096']);
    await c.waitLeader();
    const by = await connect(g.url, { token: c.token('mp_by'), label: 'bystander' });
    const before = await metrics(g.port);
    // polling: handshake, then a POST of 5000 bytes
    const hs = await get(g.port, '/socket.io/?EIO=4&transport=polling');
    assert.equal(hs.status, 200, `polling handshake -> ${hs.status}`);
    const sid = JSON.parse(hs.body.slice(1)).sid;
    const body = `4${'x'.repeat(4999)}`;
    const post = await raw.rawHttp(g.port, `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n` +
      `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`, { timeoutMs: 3000 });
    assert.match(post.data, /^HTTP\/1\.1 413 /, `expected 413, got ${JSON.stringify(post.data.slice(0, 200))}`);
    // WebSocket: a 5000-byte message -> close 1009
    const ws = await raw.open(g.port, '/socket.io/?EIO=4&transport=websocket');
    const open = await ws.next(3000);
    assert.equal(open.type, 'frame');
    await ws.send(raw.OP.TEXT, `4${'y'.repeat(4999)}`);
    const cl = await ws.next(3000);
    assert.ok(cl.type === 'frame' && cl.opcode === raw.OP.CLOSE && cl.code === 1009, `expected close 1009, got ${raw.describe(cl)}`);
    ws.destroy();
    // a real client emitting an oversized event is disconnected, not the others
    const big = await connect(g.url, { token: c.token('mp_big'), label: 'big sender' });
    const gone = new Promise((resolve) => big.socket.once('disconnect', resolve));
    big.socket.emit('hello', 'z'.repeat(5000));
    const reason = await Promise.race([gone, sleep(DEFAULT_WAIT).then(() => 'still connected')]);
    assert.notEqual(reason, 'still connected', 'a client sending 5000 bytes over a 4096 maxPayload stayed connected');
    await bystanderReceives(c, by, 'mp_by');
    const m = await metrics(g.port);
    const counted = m.get('belfry_gateway_protocol_errors_total') - before.get('belfry_gateway_protocol_errors_total');
    assert.ok(counted >= 3, `oversized payloads not counted (protocol_errors_total +${counted})`);
  }));

  test('--max-rooms: a join beyond the limit gets the error ack "too many rooms"; joined rooms keep working', T, withLogs(async () => {
    const g = await gateway(['--max-rooms', '3']);
    await c.waitLeader();
    const by = await connect(g.url, { token: c.token('mr_by'), label: 'bystander' });
    const k = await connect(g.url, { token: c.token({ sub: 'mr', rooms: ['r_*'] }), label: 'joiner' });
    // user_mr and all are joined at connect: rooms 1 and 2
    assert.deepEqual(await emitAck(k, 'join', 'r_2'), { ok: true });
    const refused = await emitAck(k, 'join', 'r_3');
    assert.deepEqual(refused, { error: 'too many rooms' });
    const n = crypto.randomBytes(4).toString('hex');
    await c.insert({ room: 'r_3', event: 'r3', payload: { nonce: n } });
    await c.insert({ room: 'r_2', event: 'r2', payload: { nonce: n } });
    await k.waitFor((e) => e.event === 'r2' && e.args[0]?.nonce === n, DEFAULT_WAIT, 'row in r_2');
    await bystanderReceives(c, by, 'mr_by');
    await sleep(200);
    assert.equal(k.named('r3').length, 0, 'a row of the room refused by the limit was delivered');
    const m = await metrics(g.port);
    assert.ok(refusals(m, 'max_rooms') >= 1, `limit_refusals{max_rooms} = ${refusals(m, 'max_rooms')}`);
    // leaving frees a slot
    assert.deepEqual(await emitAck(k, 'leave', 'r_2'), { ok: true });
    assert.deepEqual(await emitAck(k, 'join', 'r_3'), { ok: true });
  }));

  test('--events-per-sec: events beyond the rate get "rate limit exceeded"; the rate recovers; the others keep receiving', T, withLogs(async () => {
    const g = await gateway(['--events-per-sec', '5', '--max-inflight', '1000']);
    await c.waitLeader();
    const by = await connect(g.url, { token: c.token('ev_by'), label: 'bystander' });
    const k = await connect(g.url, { token: c.token('ev'), label: 'flooder' });
    const acks = await Promise.all(Array.from({ length: 30 }, () => emitAck(k, 'join', 'user_ev')));
    const limited = acks.filter((a) => a?.error === 'rate limit exceeded').length;
    const ok = acks.filter((a) => a?.ok === true).length;
    assert.ok(limited >= 15, `only ${limited} of 30 events refused at 5/s (burst 10): ${JSON.stringify(acks)}`);
    assert.ok(ok >= 5 && ok <= 12, `${ok} of 30 events allowed at 5/s (burst 10)`);
    await bystanderReceives(c, by, 'ev_by');
    await bystanderReceives(c, k, 'ev');        // the flooder itself still receives
    await sleep(1000);
    assert.deepEqual(await emitAck(k, 'join', 'user_ev'), { ok: true }, 'the rate did not recover after 1 s');
    const m = await metrics(g.port);
    assert.ok(refusals(m, 'events_per_sec') >= limited, `limit_refusals{events_per_sec} = ${refusals(m, 'events_per_sec')} < ${limited}`);
  }));

  test('--max-inflight: a request beyond it gets "too many requests in flight" while the broker is stalled', T, withLogs(async () => {
    const g = await gateway(['--max-inflight', '2', '--rpc-timeout-ms', '20000']);
    await c.waitLeader();
    const by = await connect(g.url, { token: c.token('if_by'), label: 'bystander' });
    const k = await connect(g.url, { token: c.token('if'), label: 'requester' });
    await sleep(500);               // the unread snapshot of the connect is answered
    const n = crypto.randomBytes(4).toString('hex');
    process.kill(c.broker.pid, 'SIGSTOP');
    let acks;
    try {
      const p = [emitAck(k, 'unread'), emitAck(k, 'unread'), emitAck(k, 'unread')];
      const third = await Promise.race([p[2], sleep(1500).then(() => 'no ack')]);
      assert.deepEqual(third, { error: 'too many requests in flight' }, 'the third request while two are in flight');
      await c.insert({ room: 'user_if_by', event: 'bystander', payload: { nonce: n } });
      acks = p;
    } finally {
      process.kill(c.broker.pid, 'SIGCONT');
    }
    const firsts = await Promise.all(acks.slice(0, 2));
    for (const a of firsts) assert.notDeepEqual(a, { error: 'too many requests in flight' }, `one of the first two was refused: ${JSON.stringify(firsts)}`);
    await by.waitFor((e) => e.event === 'bystander' && e.args[0]?.nonce === n, DEFAULT_WAIT, 'row inserted while the broker was stalled');
    const m = await metrics(g.port);
    assert.ok(refusals(m, 'max_inflight') >= 1, `limit_refusals{max_inflight} = ${refusals(m, 'max_inflight')}`);
    // the slots are free again
    const again = await emitAck(k, 'unread');
    assert.notDeepEqual(again, { error: 'too many requests in flight' });
  }));

  // Connects a reader and a non-reader in room bcast of gateway g; returns both
  // and the non-reader's TCP socket (under the official client's WebSocket).
  async function twoReaders(g, prefix) {
    const rooms = ['bcast'];
    const fast = await connect(g.url, { token: c.token({ sub: `${prefix}_fast`, rooms }), label: 'reader' });
    const slow = await connect(g.url, { token: c.token({ sub: `${prefix}_slow`, rooms }), label: 'non-reader' });
    assert.deepEqual(await emitAck(fast, 'join', 'bcast'), { ok: true });
    assert.deepEqual(await emitAck(slow, 'join', 'bcast'), { ok: true });
    const tcp = slow.socket.io.engine.transport.ws._socket;
    assert.ok(tcp && typeof tcp.pause === 'function', 'cannot reach the client TCP socket');
    return { fast, slow, tcp };
  }
  const slowDrops = async (port) => (await metrics(port)).get('belfry_gateway_slow_consumer_disconnects_total');

  test('--max-output: a client that stops reading is disconnected at its buffer limit while a broadcast flows; the others get every row', T, withLogs(async () => {
    const g = await gateway(['--max-output', String(1024 * 1024)]);
    await c.waitLeader();
    const { fast, tcp } = await twoReaders(g, 'out');
    const before = await slowDrops(g.port);
    tcp.pause();
    // a steady broadcast: 3000 rows of 8 KiB (24 MB, far beyond the socket
    // buffers), 10 rows per INSERT, one INSERT every 10 ms
    const ROWS = 3000;
    const pad = 'p'.repeat(8 * 1024);
    for (let i = 0; i < ROWS; i += 10) {
      await c.query(`INSERT INTO notifications (room, event, payload)
                     SELECT 'bcast', 'flood', json_build_object('i', i, 'pad', $1::text)::jsonb FROM generate_series($2::int, $3::int) AS i`,
      [pad, i + 1, i + 10]);
      await sleep(10);
    }
    const got = await fast.waitForCount((e) => e.event === 'flood', ROWS, 60000 * SLOW, 'flood rows');
    assert.deepEqual(got.map((e) => e.args[0].i), Array.from({ length: ROWS }, (_, i) => i + 1), 'the reader missed or reordered rows');
    let drops = 0;
    for (let i = 0; i < 50 && drops < 1; i++) { drops = (await slowDrops(g.port)) - before; if (drops < 1) await sleep(200); }
    assert.equal(drops, 1, `slow_consumer_disconnects_total +${drops}: want exactly the non-reader`);
    await g.proc.waitFor(/event=slow_consumer/, 1000);
    await bystanderReceives(c, fast, 'out_fast');
    tcp.resume();
  }));

  test('--max-output: a burst larger than the limit does not drop a client that reads', T, withLogs(async () => {
    const g = await gateway(['--max-output', String(256 * 1024)]);
    await c.waitLeader();
    const fast = await connect(g.url, { token: c.token('burst'), label: 'reader' });
    const before = await slowDrops(g.port);
    // one transaction of 64 rows of 8 KiB: 512 KiB reach the gateway at once
    const pad = 'q'.repeat(8 * 1024);
    await c.query(`INSERT INTO notifications (room, event, payload)
                   SELECT 'user_burst', 'burst', json_build_object('i', i, 'pad', $1::text)::jsonb FROM generate_series(1, 64) AS i`, [pad]);
    const got = await fast.waitForCount((e) => e.event === 'burst', 64, 20000 * SLOW, 'burst rows');
    assert.equal(got.length, 64);
    assert.equal((await slowDrops(g.port)) - before, 0, 'a reading client was dropped as a slow consumer');
  }));

  test('--max-output: a long-polling client with a GET parked gets a message larger than the limit and is not dropped', T, withLogs(async () => {
    const g = await gateway(['--max-output', String(64 * 1024)]);
    await c.waitLeader();
    const poller = await connect(g.url, { token: c.token('pollbig'), transports: ['polling'], label: 'poller' });
    assert.equal(poller.socket.io.engine.transport.name, 'polling');
    const before = await slowDrops(g.port);
    await sleep(200);   // its next GET is parked
    // one row of 100 KiB: the parked GET takes it whole, nothing waits
    await c.insert({ room: 'user_pollbig', event: 'big', payload: { pad: 'r'.repeat(100 * 1024) } });
    const got = await poller.waitFor((e) => e.event === 'big', 20000 * SLOW, 'the big row');
    assert.equal(got.args[0].pad.length, 100 * 1024);
    assert.equal((await slowDrops(g.port)) - before, 0, 'a polling client with a parked GET was dropped as a slow consumer');
    assert.ok(poller.socket.connected, 'the polling client was disconnected');
  }));

  test('--max-output: a long-polling client that stops polling is dropped at the limit', T, withLogs(async () => {
    const g = await gateway(['--max-output', String(64 * 1024)]);
    await c.waitLeader();
    // a raw Engine.IO polling session: handshake and CONNECT, then no GET
    const hs = await get(g.port, '/socket.io/?EIO=4&transport=polling');
    assert.equal(hs.status, 200);
    const sid = JSON.parse(hs.body.slice(1)).sid;
    const q = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    const connectPkt = `40${JSON.stringify({ token: c.token('pollstop') })}`;
    const post = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: g.port, path: q, method: 'POST', agent: false,
        headers: { 'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': Buffer.byteLength(connectPkt) } },
      (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.end(connectPkt);
    });
    assert.equal(post, 200);
    const ack = await get(g.port, q);
    assert.match(ack.body, /^40\{"sid"/, `CONNECT ack: ${ack.body.slice(0, 80)}`);
    const before = await slowDrops(g.port);
    const pad = 's'.repeat(8 * 1024);
    for (let i = 0; i < 3; i++) {
      await c.query(`INSERT INTO notifications (room, event, payload)
                     SELECT 'user_pollstop', 'burst', json_build_object('i', i, 'pad', $1::text)::jsonb FROM generate_series(1, 8) AS i`, [pad]);
    }
    let drops = 0;
    for (let i = 0; i < 50 && drops < 1; i++) { drops = (await slowDrops(g.port)) - before; if (drops < 1) await sleep(100); }
    assert.equal(drops, 1, 'the session that stopped polling was not dropped');
    await g.proc.waitFor(/event=slow_consumer transport=polling/, 1000);
    const after = await get(g.port, q);
    assert.equal(after.status, 400, 'its sid is gone');
  }));
});
