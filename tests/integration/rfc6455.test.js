'use strict';
// tests/integration/rfc6455.test.js — RFC 6455 conformance of the gateway's
// WebSocket layer, driven with raw frames over a plain TCP socket against the
// plain echo endpoint `/echo` of `belfry-gateway --conformance`, and the
// framing/UTF-8 errors once more against a normal gateway's Engine.IO
// endpoint (/socket.io/?EIO=4&transport=websocket).
//
// Design: the cases follow the public case list of Autobahn|Testsuite,
// sections 1-10 (framing, pings/pongs, reserved bits, opcodes, fragmentation,
// UTF-8, close handling, limits and large messages, autofragmentation),
// written with our own frame builder (lib/rawws.js). Autobahn itself is a
// Python 2 / Docker tool that cannot run on this machine; this file is its
// stand-in. Each case opens its own connection, writes its frames (whole,
// chopped into 1-byte writes or with pauses) and checks the reaction the RFC
// requires: an echo / a pong, nothing, or a close frame with the required
// code (1002 protocol error, 1007 invalid payload, 1009 too big) followed by
// the end of the TCP connection. After every case a fresh connection must be
// echoed (the gateway still answers); after the file the gateway must exit 0
// on SIGTERM with no sanitizer report. The cases of one section run in one
// test and every failure is listed with the case id, the bytes sent, what was
// expected and what came. Autobahn's "non-strict" behaviours are accepted
// where the RFC allows them (a close code echoed or 1000 on a client close;
// invalid UTF-8 detected at the end of the message rather than at once).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { BUILD, ROOT, SLOW, Proc, freePort, sleep } = require('./lib/harness');
const raw = require('./lib/rawws');

const { OP, frame, closePayload } = raw;
const T = { timeout: 180000 * SLOW };
const WAIT = 3000 * SLOW;
const MAX = 1000000;                  // maxPayload of the conformance gateway
const ECHO_MAX = 32 * 1024 * 1024;    // largest message on /echo (Autobahn sends up to 16 MiB)
const b = (s) => (Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'));
const hx = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// ---------------------------------------------------------------------------
// Gateways.
async function startGateway(name, args) {
  const port = await freePort();
  const pub = await freePort();
  const rpc = await freePort();
  const proc = new Proc(name, path.join(BUILD, 'belfry-gateway'), [
    '--listen', `127.0.0.1:${port}`, '--broker-pub', `tcp://127.0.0.1:${pub}`, '--broker-rpc', `tcp://127.0.0.1:${rpc}`,
    '--log-level', process.env.BELFRY_TEST_LOG_LEVEL || 'info', ...args,
  ], { logFile: path.join(ROOT, 'tests', 'out', 'rfc6455', `${name}.log`) });
  await proc.waitFor(/event=ready/, 15000 * SLOW);
  return { proc, port };
}

async function stopGateway(g) {
  if (!g) return;
  const r = await g.proc.stop('SIGTERM');
  const tail = g.proc.tail(30);
  assert.ok(!r.forced, `${g.proc.name} did not exit on SIGTERM\n${tail}`);
  assert.ok(r.code === 0 || r.code === null, `${g.proc.name} exited with ${r.code}\n${tail}`);
  assert.ok(!/AddressSanitizer|LeakSanitizer|runtime error:/.test(tail), `sanitizer report:\n${tail}`);
}

// A target: where to connect, what comes first, how to check liveness.
function echoTarget(g) {
  return {
    name: '/echo',
    g,
    async open() { return raw.open(g.port, '/echo'); },
    async alive() {
      if (!g.proc.alive) throw new Error(`the gateway died: ${JSON.stringify(g.proc.exitInfo)}\n${g.proc.tail(30)}`);
      const c = await raw.open(g.port, '/echo');
      try {
        await c.send(OP.TEXT, 'alive?');
        const f = await c.next(WAIT);
        if (f.type !== 'frame' || f.payload.toString() !== 'alive?') throw new Error(`the gateway no longer echoes: ${raw.describe(f)}`);
      } finally { c.destroy(); }
    },
  };
}

function eioTarget(g) {
  const eioPath = '/socket.io/?EIO=4&transport=websocket';
  const openEio = async () => {
    const c = await raw.open(g.port, eioPath);
    const f = await c.next(WAIT);
    if (f.type !== 'frame' || f.opcode !== OP.TEXT || f.payload[0] !== 0x30) {
      c.destroy();
      throw new Error(`no Engine.IO open packet: ${raw.describe(f)}`);
    }
    return c;
  };
  return {
    name: 'Engine.IO',
    g,
    open: openEio,
    async alive() {
      if (!g.proc.alive) throw new Error(`the gateway died: ${JSON.stringify(g.proc.exitInfo)}\n${g.proc.tail(30)}`);
      const c = await openEio();
      try {
        // a Socket.IO CONNECT without a token is answered with CONNECT_ERROR
        await c.send(OP.TEXT, '40');
        const f = await c.next(WAIT);
        if (f.type !== 'frame' || !f.payload.toString().startsWith('44')) throw new Error(`no answer to "40": ${raw.describe(f)}`);
      } finally { c.destroy(); }
    },
  };
}

// ---------------------------------------------------------------------------
// Expectations. Each throws "expected ..., got ..." on a mismatch.
const opName = (op) => ({ 0: 'continuation', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' }[op] ?? `opcode ${op}`);
const show = (buf) => (buf.length > 40 ? `${buf.subarray(0, 40).toString('hex')}... (${buf.length} bytes)` : `0x${buf.toString('hex')}`);

async function expectFrame(c, op, payload, what) {
  const want = b(payload);
  const f = await c.next(WAIT + want.length / 50000);
  if (f.type !== 'frame' || f.opcode !== op || !f.fin || !f.payload.equals(want)) {
    throw new Error(`expected ${what || `${opName(op)} echo`} of ${show(want)}, got ${raw.describe(f)}`);
  }
}
const echo = (c, payload, op = OP.TEXT) => expectFrame(c, op, payload);
const pong = (c, payload = '') => expectFrame(c, OP.PONG, payload, 'pong');

// Expects a close frame with one of `codes` (null: no status code), then the
// end of the TCP connection, with no data frame or pong in between.
async function closes(c, codes) {
  const f = await c.next(WAIT * 2);
  if (f.type !== 'frame' || f.opcode !== OP.CLOSE || !codes.includes(f.code)) {
    throw new Error(`expected a close frame with code ${codes.join(' or ')}, got ${raw.describe(f)}`);
  }
  const e = await c.next(WAIT);
  if (e.type !== 'end') throw new Error(`expected the TCP connection to end after the close frame, got ${raw.describe(e)}`);
  return f;
}
// For a protocol violation: close with the required code.
const fails = (c, code) => closes(c, [code]);

async function nothing(c, ms = 300) {
  const f = await c.next(ms);
  if (f.type !== 'timeout') throw new Error(`expected nothing within ${ms} ms, got ${raw.describe(f)}`);
}

// A normal client close (1000) must be answered with a close (1000) and the end.
async function byeNormal(c) {
  await c.send(OP.CLOSE, closePayload(1000));
  await closes(c, [1000]);
}

// Runs every case of a list against a target; collects failures with the bytes sent.
async function runCases(target, cases) {
  const failures = [];
  for (const cs of cases) {
    let c = null;
    const sent = [];
    try {
      c = await target.open();
      const w = c.write.bind(c);
      c.write = (buf) => { sent.push(buf); return w(buf); };
      await cs.run(c);
    } catch (e) {
      const bytes = Buffer.concat(sent);
      failures.push(`case ${cs.id} (${cs.desc}) on ${target.name}: ${e.message}\n    bytes sent: ${show(bytes)}`);
    } finally {
      if (c) c.destroy();
    }
    try {
      await target.alive();
    } catch (e) {
      failures.push(`after case ${cs.id} (${cs.desc}) on ${target.name}: ${e.message}`);
      if (!target.g.proc.alive) break;
    }
  }
  assert.equal(failures.length, 0, `${failures.length} of ${cases.length} case(s) failed:\n  ${failures.join('\n  ')}`);
}

// ---------------------------------------------------------------------------
// The cases, section by section (the ids follow Autobahn's numbering).
const S = {};

// 1. Framing: text and binary messages of every length-encoding boundary.
S[1] = [];
{
  const lens = [0, 125, 126, 127, 128, 65535, 65536];
  for (const [k, op] of [[1, OP.TEXT], [2, OP.BINARY]]) {
    lens.forEach((n, i) => {
      const payload = op === OP.TEXT ? Buffer.alloc(n, '*') : Buffer.alloc(n, 0xfe);
      S[1].push({ id: `1.${k}.${i + 1}`, desc: `${opName(op)} message of ${n} bytes (${n < 126 ? 7 : n < 65536 ? 16 : 64}-bit length)`,
        run: async (c) => { await c.send(op, payload); await echo(c, payload, op); await byeNormal(c); } });
    });
    S[1].push({ id: `1.${k}.8`, desc: `${opName(op)} message of 65536 bytes written in chops of 997 bytes`,
      run: async (c) => {
        const payload = op === OP.TEXT ? Buffer.alloc(65536, '*') : Buffer.alloc(65536, 0xfe);
        await c.writeChopped(frame(op, payload), 997);
        await echo(c, payload, op);
        await byeNormal(c);
      } });
  }
}

// 2. Pings and pongs.
S[2] = [
  { id: '2.1', desc: 'ping without payload', run: async (c) => { await c.send(OP.PING); await pong(c); await byeNormal(c); } },
  { id: '2.2', desc: 'ping with a text payload', run: async (c) => { await c.send(OP.PING, 'Hello, world!'); await pong(c, 'Hello, world!'); await byeNormal(c); } },
  { id: '2.3', desc: 'ping with a binary payload', run: async (c) => { const p = hx('00ff fe fd fc fb 00 ff'); await c.send(OP.PING, p); await pong(c, p); await byeNormal(c); } },
  { id: '2.4', desc: 'ping with a 125-byte payload', run: async (c) => { const p = Buffer.alloc(125, 0xfe); await c.send(OP.PING, p); await pong(c, p); await byeNormal(c); } },
  { id: '2.5', desc: 'ping with a 126-byte payload (control frame too big) -> 1002',
    run: async (c) => { await c.send(OP.PING, Buffer.alloc(126, 0xfe)); await fails(c, 1002); } },
  { id: '2.6', desc: '125-byte ping written one byte at a time',
    run: async (c) => { const p = Buffer.alloc(125, 0xfe); await c.writeChopped(frame(OP.PING, p), 1); await pong(c, p); await byeNormal(c); } },
  { id: '2.7', desc: 'unsolicited pong without payload -> nothing',
    run: async (c) => { await c.send(OP.PONG); await nothing(c); await byeNormal(c); } },
  { id: '2.8', desc: 'unsolicited pong with payload -> nothing',
    run: async (c) => { await c.send(OP.PONG, 'unsolicited pong payload'); await nothing(c); await byeNormal(c); } },
  { id: '2.9', desc: 'unsolicited pong, then a ping -> only the pong to the ping',
    run: async (c) => { await c.send(OP.PONG, 'unsolicited'); await c.send(OP.PING, 'ping payload'); await pong(c, 'ping payload'); await nothing(c); await byeNormal(c); } },
  { id: '2.10', desc: '10 pings in a row -> 10 pongs in order',
    run: async (c) => {
      await c.write(Buffer.concat(Array.from({ length: 10 }, (_, i) => frame(OP.PING, `payload-${i}`))));
      for (let i = 0; i < 10; i++) await pong(c, `payload-${i}`);
      await byeNormal(c);
    } },
  { id: '2.11', desc: '10 pings written one byte at a time -> 10 pongs',
    run: async (c) => {
      await c.writeChopped(Buffer.concat(Array.from({ length: 10 }, (_, i) => frame(OP.PING, `payload-${i}`))), 1);
      for (let i = 0; i < 10; i++) await pong(c, `payload-${i}`);
      await byeNormal(c);
    } },
  { id: '2.x.1', desc: 'fragmented ping (FIN clear) -> 1002',
    run: async (c) => { await c.send(OP.PING, 'frag', { fin: false }); await c.send(OP.CONT, 'ment', { fin: true }); await fails(c, 1002); } },
  { id: '2.x.2', desc: 'ping with a 16-bit length field of 126 but only a header -> 1002 (no waiting for the payload)',
    run: async (c) => { await c.write(frame(OP.PING, Buffer.alloc(0), { len: 126, lenForm: 16 })); await fails(c, 1002); } },
];

// 3. Reserved bits: nothing was negotiated, so any RSV bit fails the connection.
S[3] = [
  { id: '3.1', desc: 'text with RSV1 -> 1002', run: async (c) => { await c.send(OP.TEXT, 'Hello, world!', { rsv: 4 }); await fails(c, 1002); } },
  { id: '3.2', desc: 'text echoed, then text with RSV2, then ping -> echo, 1002, no pong',
    run: async (c) => {
      await c.send(OP.TEXT, 'Hello, world!'); await echo(c, 'Hello, world!');
      await c.send(OP.TEXT, 'Hello, world!', { rsv: 2 }); await c.send(OP.PING);
      await fails(c, 1002);
    } },
  { id: '3.3', desc: 'text, text with RSV3, ping pipelined in one write -> echo, 1002',
    run: async (c) => {
      await c.write(Buffer.concat([frame(OP.TEXT, 'Hello, world!'), frame(OP.TEXT, 'Hello, world!', { rsv: 3 }), frame(OP.PING)]));
      await echo(c, 'Hello, world!'); await fails(c, 1002);
    } },
  { id: '3.4', desc: 'the same with RSV4 written one byte at a time -> echo, 1002',
    run: async (c) => {
      await c.writeChopped(Buffer.concat([frame(OP.TEXT, 'Hello, world!'), frame(OP.TEXT, 'Hello, world!', { rsv: 4 }), frame(OP.PING)]), 1);
      await echo(c, 'Hello, world!'); await fails(c, 1002);
    } },
  { id: '3.5', desc: 'binary with RSV=5 -> 1002', run: async (c) => { await c.send(OP.BINARY, hx('00ff fe fd fc fb 00 ff'), { rsv: 5 }); await fails(c, 1002); } },
  { id: '3.6', desc: 'ping with RSV=6 -> 1002', run: async (c) => { await c.send(OP.PING, 'Hello, world!', { rsv: 6 }); await fails(c, 1002); } },
  { id: '3.7', desc: 'close with RSV=7 -> 1002', run: async (c) => { await c.send(OP.CLOSE, closePayload(1000), { rsv: 7 }); await fails(c, 1002); } },
];

// 4. Opcodes: 3-7 (data) and 11-15 (control) are reserved.
S[4] = [];
for (const [sec, ops] of [['4.1', [3, 4, 5, 6, 7]], ['4.2', [11, 12, 13, 14, 15]]]) {
  ops.forEach((op, i) => {
    S[4].push({ id: `${sec}.${i + 1}`, desc: `reserved opcode ${op} without payload -> 1002`,
      run: async (c) => { await c.send(op); await fails(c, 1002); } });
    S[4].push({ id: `${sec}.${i + 1}b`, desc: `reserved opcode ${op} with payload -> 1002`,
      run: async (c) => { await c.send(op, 'reserved opcode payload'); await fails(c, 1002); } });
    S[4].push({ id: `${sec}.${i + 1}c`, desc: `text, reserved opcode ${op}, ping -> echo, 1002, no pong`,
      run: async (c) => {
        await c.write(Buffer.concat([frame(OP.TEXT, 'Hello, world!'), frame(op, 'x'), frame(OP.PING)]));
        await echo(c, 'Hello, world!'); await fails(c, 1002);
      } });
  });
}
S[4].push({ id: '4.x.1', desc: 'unmasked client text frame -> 1002',
  run: async (c) => { await c.send(OP.TEXT, 'Hello, world!', { mask: false }); await fails(c, 1002); } });
S[4].push({ id: '4.x.2', desc: 'unmasked client ping -> 1002',
  run: async (c) => { await c.send(OP.PING, 'x', { mask: false }); await fails(c, 1002); } });

// 5. Fragmentation.
const frags = (op, parts) => parts.map((p, i) => frame(i === 0 ? op : OP.CONT, p, { fin: i === parts.length - 1 }));
S[5] = [
  { id: '5.1', desc: 'ping in 2 fragments -> 1002',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.PING, 'frag1', { fin: false }), frame(OP.CONT, 'frag2')])); await fails(c, 1002); } },
  { id: '5.2', desc: 'pong in 2 fragments -> 1002',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.PONG, 'frag1', { fin: false }), frame(OP.CONT, 'frag2')])); await fails(c, 1002); } },
  { id: '5.3', desc: 'text in 2 fragments -> echo',
    run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, ['fragment1', 'fragment2']))); await echo(c, 'fragment1fragment2'); await byeNormal(c); } },
  { id: '5.4', desc: 'text in 2 fragments with a pause between',
    run: async (c) => { const [f1, f2] = frags(OP.TEXT, ['fragment1', 'fragment2']); await c.write(f1); await sleep(300); await c.write(f2); await echo(c, 'fragment1fragment2'); await byeNormal(c); } },
  { id: '5.5', desc: 'text in 2 fragments written one byte at a time',
    run: async (c) => { await c.writeChopped(Buffer.concat(frags(OP.TEXT, ['fragment1', 'fragment2'])), 1); await echo(c, 'fragment1fragment2'); await byeNormal(c); } },
  { id: '5.6', desc: 'text in 2 fragments with a ping between -> pong, then echo',
    run: async (c) => {
      const [f1, f2] = frags(OP.TEXT, ['fragment1', 'fragment2']);
      await c.write(Buffer.concat([f1, frame(OP.PING, 'ping payload'), f2]));
      await pong(c, 'ping payload'); await echo(c, 'fragment1fragment2'); await byeNormal(c);
    } },
  { id: '5.7', desc: 'the same with pauses between the frames',
    run: async (c) => {
      const [f1, f2] = frags(OP.TEXT, ['fragment1', 'fragment2']);
      await c.write(f1); await sleep(200); await c.write(frame(OP.PING, 'ping payload')); await sleep(200); await c.write(f2);
      await pong(c, 'ping payload'); await echo(c, 'fragment1fragment2'); await byeNormal(c);
    } },
  { id: '5.8', desc: 'the same written one byte at a time',
    run: async (c) => {
      const [f1, f2] = frags(OP.TEXT, ['fragment1', 'fragment2']);
      await c.writeChopped(Buffer.concat([f1, frame(OP.PING, 'ping payload'), f2]), 1);
      await pong(c, 'ping payload'); await echo(c, 'fragment1fragment2'); await byeNormal(c);
    } },
  { id: '5.6b', desc: 'text in 3 fragments with an unsolicited pong between -> echo only',
    run: async (c) => {
      const [f1, f2, f3] = frags(OP.TEXT, ['a', 'b', 'c']);
      await c.write(Buffer.concat([f1, frame(OP.PONG, 'x'), f2, frame(OP.PONG), f3]));
      await echo(c, 'abc'); await nothing(c); await byeNormal(c);
    } },
  { id: '5.9', desc: 'continuation (FIN set) without a message, then text -> 1002, no echo',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.CONT, 'non-continuation payload'), frame(OP.TEXT, 'Hello, world!')])); await fails(c, 1002); } },
  { id: '5.10', desc: 'the same written one byte at a time -> 1002',
    run: async (c) => { await c.writeChopped(Buffer.concat([frame(OP.CONT, 'non-continuation payload'), frame(OP.TEXT, 'Hello, world!')]), 1); await fails(c, 1002); } },
  { id: '5.12', desc: 'continuation (FIN clear) without a message, then text -> 1002',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.CONT, 'non-continuation payload', { fin: false }), frame(OP.TEXT, 'Hello, world!')])); await fails(c, 1002); } },
  { id: '5.15', desc: 'text in 2 fragments, then continuation without a message -> echo, then 1002',
    run: async (c) => {
      await c.write(Buffer.concat([...frags(OP.TEXT, ['fragment1', 'fragment2']), frame(OP.CONT, 'fragment3', { fin: false }), frame(OP.TEXT, 'fragment4')]));
      await echo(c, 'fragment1fragment2'); await fails(c, 1002);
    } },
  { id: '5.16', desc: 'continuation, text (FIN clear), continuation -> 1002',
    run: async (c) => {
      await c.write(Buffer.concat([frame(OP.CONT, 'fragment1', { fin: false }), frame(OP.TEXT, 'fragment2', { fin: false }), frame(OP.CONT, 'fragment3')]));
      await fails(c, 1002);
    } },
  { id: '5.18', desc: 'text (FIN clear), then a new text frame instead of a continuation -> 1002',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.TEXT, 'fragment1', { fin: false }), frame(OP.TEXT, 'fragment2')])); await fails(c, 1002); } },
  { id: '5.18b', desc: 'binary (FIN clear), then text -> 1002',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.BINARY, 'x', { fin: false }), frame(OP.TEXT, 'y')])); await fails(c, 1002); } },
  { id: '5.19', desc: 'text in 5 fragments with 2 pings between and pauses -> 2 pongs, then echo',
    run: async (c) => {
      const f = frags(OP.TEXT, ['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5']);
      await c.write(f[0]); await c.write(f[1]); await c.write(frame(OP.PING, 'pongme 1!'));
      await pong(c, 'pongme 1!');
      await sleep(300);
      await c.write(f[2]); await c.write(f[3]); await c.write(frame(OP.PING, 'pongme 2!'));
      await pong(c, 'pongme 2!');
      await sleep(300);
      await c.write(f[4]);
      await echo(c, 'fragment1fragment2fragment3fragment4fragment5'); await byeNormal(c);
    } },
  { id: '5.x.1', desc: 'binary in 3 fragments -> one binary echo',
    run: async (c) => { await c.write(Buffer.concat(frags(OP.BINARY, [hx('0001'), hx('02'), hx('ff')]))); await echo(c, hx('000102ff'), OP.BINARY); await byeNormal(c); } },
  { id: '5.x.2', desc: 'text of empty fragments and one "x" -> "x"',
    run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, ['', '', 'x', '']))); await echo(c, 'x'); await byeNormal(c); } },
];

// 6. UTF-8. Sequences by the categories of Markus Kuhn's UTF-8 decoder test.
const GREEK = hx('cebae1bdb9cf83cebcceb5');              // κόσμε
const UTF8_VALID = [
  ['6.2', 'Hello-µ@ßöäüàá-UTF-8!!', b('Hello-µ@ßöäüàá-UTF-8!!')],
  ['6.5.1', 'κόσμε', GREEK],
  ['6.5.2', 'hello$world', b('hello$world')],
  ['6.5.3', 'U+00A2', hx('68656c6c6fc2a2776f726c64')],
  ['6.5.4', 'U+20AC', hx('68656c6c6fe282ac776f726c64')],
  ['6.5.5', 'U+24B62', hx('68656c6c6ff0a4ada2776f726c64')],
  ['6.7.1', 'U+0000', hx('00')],
  ['6.7.2', 'U+0080', hx('c280')],
  ['6.7.3', 'U+0800', hx('e0a080')],
  ['6.7.4', 'U+10000', hx('f0908080')],
  ['6.9.1', 'U+007F', hx('7f')],
  ['6.9.2', 'U+07FF', hx('dfbf')],
  ['6.9.3', 'U+FFFF', hx('efbfbf')],
  ['6.9.4', 'U+10FFFF', hx('f48fbfbf')],
  ['6.11.1', 'U+D7FF', hx('ed9fbf')],
  ['6.11.2', 'U+E000', hx('ee8080')],
  ['6.11.3', 'U+FFFD', hx('efbfbd')],
  ['6.22.1', 'noncharacter U+FFFE', hx('efbfbe')],
  ['6.22.2', 'noncharacter U+1FFFE', hx('f09fbfbe')],
  ['6.22.3', 'noncharacter U+10FFFF', hx('f48fbfbf')],
  ['6.23.1', 'specials U+FFF9', hx('efbfb9')],
];
for (let i = 1; i <= GREEK.length; i++) {
  // every prefix of κόσμε that ends on a code point boundary is valid
  if ([2, 5, 7, 9, 11].includes(i)) UTF8_VALID.push([`6.6.${i}`, `prefix of κόσμε, ${i} bytes`, GREEK.subarray(0, i)]);
}
const UTF8_INVALID = [
  ['6.6.x', 'prefix of κόσμε ending inside a code point (1 byte)', GREEK.subarray(0, 1)],
  ['6.6.y', 'prefix of κόσμε ending inside a code point (4 bytes)', GREEK.subarray(0, 4)],
  ['6.8.1', 'first 5-byte sequence (beyond U+10FFFF)', hx('f888808080')],
  ['6.8.2', 'first 6-byte sequence', hx('fc8480808080')],
  ['6.10.1', 'last 4-byte pattern U+1FFFFF', hx('f7bfbfbf')],
  ['6.10.2', 'last 5-byte pattern', hx('fbbfbfbfbf')],
  ['6.11.5', 'U+110000', hx('f4908080')],
  ['6.12.1', 'lone continuation 0x80', hx('80')],
  ['6.12.2', 'lone continuation 0xbf', hx('bf')],
  ['6.12.3', 'continuations 80 bf 80 bf', hx('80bf80bf')],
  ['6.12.8', 'all continuation bytes 0x80-0xbe', Buffer.from(Array.from({ length: 0x3f }, (_, i) => 0x80 + i))],
  ['6.13.1', 'lonely 2-byte starts followed by spaces', Buffer.from(Array.from({ length: 0x20 }, (_, i) => [0xc0 + i, 0x20]).flat())],
  ['6.13.2', 'lonely 3-byte starts followed by spaces', Buffer.from(Array.from({ length: 0x10 }, (_, i) => [0xe0 + i, 0x20]).flat())],
  ['6.13.3', 'lonely 4-byte starts followed by spaces', Buffer.from(Array.from({ length: 0x08 }, (_, i) => [0xf0 + i, 0x20]).flat())],
  ['6.14.1', '2-byte sequence missing its last byte (c0)', hx('c0')],
  ['6.14.2', '3-byte sequence missing its last byte (e0 80)', hx('e080')],
  ['6.14.6', '2-byte U+07FF missing its last byte (df)', hx('df')],
  ['6.14.7', '3-byte U+FFFF missing its last byte (ef bf)', hx('efbf')],
  ['6.14.8', '4-byte missing its last byte (f7 bf bf)', hx('f7bfbf')],
  ['6.15.1', 'concatenation of incomplete sequences', hx('c0e080f08080f8808080fc80808080dfefbff7bfbffbbfbfbffdbfbfbfbf')],
  ['6.16.1', 'impossible byte fe', hx('fe')],
  ['6.16.2', 'impossible byte ff', hx('ff')],
  ['6.16.3', 'impossible bytes fe fe ff ff', hx('fefeffff')],
  ['6.17.1', 'overlong "/" in 2 bytes', hx('c0af')],
  ['6.17.2', 'overlong "/" in 3 bytes', hx('e080af')],
  ['6.17.3', 'overlong "/" in 4 bytes', hx('f08080af')],
  ['6.18.1', 'maximum overlong 2 bytes', hx('c1bf')],
  ['6.18.2', 'maximum overlong 3 bytes', hx('e09fbf')],
  ['6.18.3', 'maximum overlong 4 bytes', hx('f08fbfbf')],
  ['6.19.1', 'overlong NUL in 2 bytes', hx('c080')],
  ['6.19.2', 'overlong NUL in 3 bytes', hx('e08080')],
  ['6.20.1', 'single high surrogate U+D800', hx('eda080')],
  ['6.20.4', 'single high surrogate U+DBFF', hx('edafbf')],
  ['6.20.5', 'single low surrogate U+DC00', hx('edb080')],
  ['6.20.7', 'single low surrogate U+DFFF', hx('edbfbf')],
  ['6.21.1', 'paired surrogates U+D800 U+DC00', hx('eda080edb080')],
  ['6.21.8', 'paired surrogates U+DBFF U+DFFF', hx('edafbfedbfbf')],
  ['6.3.1', 'κόσμε + surrogate + "edited"', Buffer.concat([GREEK, hx('eda080'), b('edited')])],
];

S[6] = [
  { id: '6.1.1', desc: 'empty text', run: async (c) => { await c.send(OP.TEXT, ''); await echo(c, ''); await byeNormal(c); } },
  { id: '6.1.2', desc: 'text of 3 empty fragments', run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, ['', '', '']))); await echo(c, ''); await byeNormal(c); } },
  { id: '6.1.3', desc: 'empty, "middle frame payload", empty fragments',
    run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, ['', 'middle frame payload', '']))); await echo(c, 'middle frame payload'); await byeNormal(c); } },
];
for (const [id, desc, bytes] of UTF8_VALID) {
  S[6].push({ id, desc: `valid UTF-8 ${desc} in one frame -> echo`, run: async (c) => { await c.send(OP.TEXT, bytes); await echo(c, bytes); await byeNormal(c); } });
  if (bytes.length > 1) {
    S[6].push({ id: `${id}f`, desc: `valid UTF-8 ${desc}, one fragment per byte -> echo`,
      run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, [...bytes].map((x) => Buffer.from([x]))))); await echo(c, bytes); await byeNormal(c); } });
  }
}
for (const [id, desc, bytes] of UTF8_INVALID) {
  S[6].push({ id, desc: `invalid UTF-8 ${desc} in one frame -> 1007`, run: async (c) => { await c.send(OP.TEXT, bytes); await fails(c, 1007); } });
  if (bytes.length > 1) {
    S[6].push({ id: `${id}f`, desc: `invalid UTF-8 ${desc}, one fragment per byte -> 1007`,
      run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, [...bytes].map((x) => Buffer.from([x]))))); await fails(c, 1007); } });
  }
}
// Invalid sequences split across fragments, and fail-fast (6.4): the close
// should come before the message is finished; finishing it is the fallback the
// RFC also allows.
async function failsFastOr(c, rest) {
  const f = await c.next(1000);
  if (f.type === 'timeout') {
    await c.write(rest);
    return fails(c, 1007);
  }
  c.queue.unshift(f);
  return fails(c, 1007);
}
S[6].push(
  { id: '6.3.2', desc: 'κόσμε + surrogate + "edited", the surrogate split across 2 fragments -> 1007',
    run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, [Buffer.concat([GREEK, hx('ed')]), Buffer.concat([hx('a080'), b('edited')])]))); await fails(c, 1007); } },
  { id: '6.4.1', desc: 'fragment 1 valid, fragment 2 holds U+110000, fragment 3 after a pause -> 1007 (fail fast)',
    run: async (c) => {
      await c.write(frame(OP.TEXT, GREEK, { fin: false }));
      await c.write(frame(OP.CONT, hx('f4908080'), { fin: false }));
      await failsFastOr(c, frame(OP.CONT, 'edited'));
    } },
  { id: '6.4.2', desc: 'the invalid code point split over 3 fragments -> 1007',
    run: async (c) => {
      await c.write(frame(OP.TEXT, Buffer.concat([GREEK, hx('f4')]), { fin: false }));
      await c.write(frame(OP.CONT, hx('90'), { fin: false }));
      await failsFastOr(c, frame(OP.CONT, Buffer.concat([hx('8080'), b('edited')])));
    } },
  { id: '6.4.3', desc: 'one frame written in 3 chunks, the invalid bytes in the middle one -> 1007',
    run: async (c) => {
      const f = frame(OP.TEXT, Buffer.concat([GREEK, hx('f4908080'), b('edited')]));
      const cut1 = f.length - 6 - 4;
      await c.write(f.subarray(0, cut1)); await sleep(200);
      await c.write(f.subarray(cut1, cut1 + 4));
      await failsFastOr(c, f.subarray(cut1 + 4));
    } },
  { id: '6.x.1', desc: 'valid 4-byte code point split across 2 fragments -> echo',
    run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, [hx('f0a4'), hx('ada2')]))); await echo(c, hx('f0a4ada2')); await byeNormal(c); } },
  { id: '6.x.2', desc: 'text ending inside a code point (last fragment) -> 1007',
    run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, [b('abc'), hx('e282')]))); await fails(c, 1007); } },
  { id: '6.x.3', desc: 'invalid UTF-8 in a binary message is not checked -> echo',
    run: async (c) => { await c.send(OP.BINARY, hx('eda080fe')); await echo(c, hx('eda080fe'), OP.BINARY); await byeNormal(c); } },
  { id: '6.x.4', desc: 'invalid UTF-8 in a ping payload is not checked -> pong',
    run: async (c) => { await c.send(OP.PING, hx('fe')); await pong(c, hx('fe')); await byeNormal(c); } },
);

// 7. Close handling.
S[7] = [
  { id: '7.1.1', desc: 'text echoed, then a normal close -> close 1000, end', run: async (c) => { await c.send(OP.TEXT, 'Hello World!'); await echo(c, 'Hello World!'); await byeNormal(c); } },
  { id: '7.1.2', desc: 'two close frames -> one close back, end',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.CLOSE, closePayload(1000)), frame(OP.CLOSE, closePayload(1000))])); await closes(c, [1000]); } },
  { id: '7.1.3', desc: 'close, then a ping -> close, no pong',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.CLOSE, closePayload(1000)), frame(OP.PING, 'out of band ping')])); await closes(c, [1000]); } },
  { id: '7.1.4', desc: 'close, then text -> close, no echo',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.CLOSE, closePayload(1000)), frame(OP.TEXT, 'out of band text')])); await closes(c, [1000]); } },
  { id: '7.1.5', desc: 'text fragment, close, last fragment -> close, no echo',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.TEXT, 'fragment1', { fin: false }), frame(OP.CLOSE, closePayload(1000)), frame(OP.CONT, 'fragment2')])); await closes(c, [1000]); } },
  { id: '7.1.6', desc: '256 KiB text, ping, close pipelined -> echo, pong, close 1000',
    run: async (c) => {
      const big = Buffer.alloc(262144, 'B');
      await c.write(Buffer.concat([frame(OP.TEXT, big), frame(OP.PING, 'ping'), frame(OP.CLOSE, closePayload(1000))]));
      await echo(c, big); await pong(c, 'ping'); await closes(c, [1000]);
    } },
  { id: '7.3.1', desc: 'close with an empty payload -> close (1000 or no code), end',
    run: async (c) => { await c.send(OP.CLOSE); await closes(c, [1000, null]); } },
  { id: '7.3.2', desc: 'close with a 1-byte payload -> 1002',
    run: async (c) => { await c.send(OP.CLOSE, hx('00')); await fails(c, 1002); } },
  { id: '7.3.3', desc: 'close 1000 without reason -> close 1000', run: async (c) => { await c.send(OP.CLOSE, closePayload(1000)); await closes(c, [1000]); } },
  { id: '7.3.4', desc: 'close 1000 with a reason -> close 1000', run: async (c) => { await c.send(OP.CLOSE, closePayload(1000, 'Hello World!')); await closes(c, [1000]); } },
  { id: '7.3.5', desc: 'close 1000 with a 123-byte reason (125-byte payload) -> close 1000',
    run: async (c) => { await c.send(OP.CLOSE, closePayload(1000, '*'.repeat(123))); await closes(c, [1000]); } },
  { id: '7.3.6', desc: 'close 1000 with a 124-byte reason (126-byte payload) -> 1002',
    run: async (c) => { await c.send(OP.CLOSE, closePayload(1000, '*'.repeat(124))); await fails(c, 1002); } },
  { id: '7.5.1', desc: 'close reason with invalid UTF-8 -> 1007',
    run: async (c) => { await c.send(OP.CLOSE, closePayload(1000, Buffer.concat([GREEK, hx('eda080'), b('edited')]))); await fails(c, 1007); } },
  { id: '7.x.1', desc: 'close frame in 2 fragments -> 1002',
    run: async (c) => { await c.write(Buffer.concat([frame(OP.CLOSE, hx('03'), { fin: false }), frame(OP.CONT, hx('e8'))])); await fails(c, 1002); } },
];
[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].forEach((code, i) => {
  S[7].push({ id: `7.7.${i + 1}`, desc: `close with valid code ${code} -> close with ${code} or 1000`,
    run: async (c) => { await c.send(OP.CLOSE, closePayload(code)); await closes(c, [code, 1000]); } });
});
[0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].forEach((code, i) => {
  S[7].push({ id: `7.9.${i + 1}`, desc: `close with invalid code ${code} -> 1002`,
    run: async (c) => { await c.send(OP.CLOSE, closePayload(code)); await fails(c, 1002); } });
});
[5000, 65535].forEach((code, i) => {
  S[7].push({ id: `7.13.${i + 1}`, desc: `close with out-of-range code ${code} -> 1002`,
    run: async (c) => { await c.send(OP.CLOSE, closePayload(code)); await fails(c, 1002); } });
});

// 9. Limits and large messages. /echo takes messages up to ECHO_MAX (32 MiB),
// so Autobahn's 64 KiB - 16 MiB cases are echoed; one byte more -> 1009.
const big = (n, op) => (op === OP.TEXT ? Buffer.alloc(n, 'x') : Buffer.alloc(n, 0xa5));
S[9] = [];
for (const [k, op] of [[1, OP.TEXT], [2, OP.BINARY]]) {
  [65536, 262144, 1 << 20, 4 << 20, 8 << 20, 16 << 20].forEach((n, i) => {
    S[9].push({ id: `9.${k}.${i + 1}`, desc: `${opName(op)} message of ${n} bytes -> echo`,
      run: async (c) => { const p = big(n, op); await c.write(frame(op, p)); await echo(c, p, op); await byeNormal(c); } });
  });
  S[9].push({ id: `9.${k}.x`, desc: `${opName(op)} message of ${ECHO_MAX + 1} bytes (one over the limit) -> 1009`,
    run: async (c) => { await c.write(frame(op, big(ECHO_MAX + 1, op))); await fails(c, 1009); } });
}
[64, 4096, 65536, 1 << 20].forEach((fs, i) => {
  S[9].push({ id: `9.3.${i + 1}`, desc: `text of 4 MiB in fragments of ${fs} bytes -> echo`,
    run: async (c) => {
      const p = big(4 << 20, OP.TEXT);
      const parts = [];
      for (let o = 0; o < p.length; o += fs) parts.push(p.subarray(o, o + fs));
      await c.write(Buffer.concat(frags(OP.TEXT, parts)));
      await echo(c, p); await byeNormal(c);
    } });
});
[64, 4096].forEach((cs, i) => {
  S[9].push({ id: `9.5.${i + 1}`, desc: `binary of 262144 bytes in one frame written in chops of ${cs} bytes -> echo`,
    run: async (c) => { const p = big(262144, OP.BINARY); await c.writeChopped(frame(OP.BINARY, p), cs); await echo(c, p, OP.BINARY); await byeNormal(c); } });
});
S[9].push(
  { id: '9.x.1', desc: 'fragments that add up to one byte over the limit -> 1009',
    run: async (c) => { await c.write(Buffer.concat(frags(OP.BINARY, [big(ECHO_MAX / 2, OP.BINARY), big(ECHO_MAX / 2 + 1, OP.BINARY)]))); await fails(c, 1009); } },
  { id: '9.x.2', desc: 'a 64-bit length of 2^62 with no payload -> 1009 at once',
    run: async (c) => { await c.write(frame(OP.BINARY, Buffer.alloc(0), { len: 2 ** 62, lenForm: 64 })); await fails(c, 1009); } },
  { id: '9.x.3', desc: 'a 64-bit length with the most significant bit set -> 1002 (or 1009)',
    run: async (c) => {
      const f = frame(OP.BINARY, Buffer.alloc(0), { len: 0, lenForm: 64 });
      f[2] = 0x80;                    // the length field starts at byte 2
      await c.write(f);
      await closes(c, [1002, 1009]);
    } },
);

// 10. Autofragmentation: a message the client fragments arbitrarily.
S[10] = [
  { id: '10.1.1', desc: '65536-byte text sent as fragments of 1300 bytes -> one echo',
    run: async (c) => {
      const p = Buffer.alloc(65536, '*');
      const parts = [];
      for (let o = 0; o < p.length; o += 1300) parts.push(p.subarray(o, o + 1300));
      await c.write(Buffer.concat(frags(OP.TEXT, parts)));
      await echo(c, p); await byeNormal(c);
    } },
];

// ---------------------------------------------------------------------------
describe('RFC 6455 on /echo (belfry-gateway --conformance)', () => {
  let g;
  let target;
  before(async () => { g = await startGateway('gateway-echo', ['--conformance']); target = echoTarget(g); });
  after(async () => { await stopGateway(g); });

  const titles = {
    1: 'framing', 2: 'pings and pongs', 3: 'reserved bits', 4: 'opcodes and masking', 5: 'fragmentation',
    6: 'UTF-8 handling', 7: 'close handling', 9: 'limits and large messages', 10: 'autofragmentation',
  };
  for (const sec of Object.keys(S)) {
    test(`section ${sec}: ${titles[sec]} (${S[sec].length} cases)`, T, async () => { await runCases(target, S[sec]); });
  }
});

// The same framing / UTF-8 errors through the Engine.IO WebSocket endpoint of
// a normal gateway (JWT configured, no broker needed for the transport).
describe('RFC 6455 on the Engine.IO endpoint of a normal gateway', () => {
  let g;
  let target;
  const MAXP = 4096;
  before(async () => {
    g = await startGateway('gateway-eio', ['--jwt-secret', 'rfc6455-test-secret', '--max-payload', String(MAXP)]);
    target = eioTarget(g);
  });
  after(async () => { await stopGateway(g); });

  const cases = [
    { id: 'e.1', desc: 'ping -> pong', run: async (c) => { await c.send(OP.PING, 'p'); await pong(c, 'p'); } },
    { id: 'e.2', desc: '"40{}" in 3 fragments with a ping between -> pong, then CONNECT_ERROR (no token)',
      run: async (c) => {
        const [f1, f2, f3] = frags(OP.TEXT, ['4', '0{', '}']);
        await c.write(Buffer.concat([f1, f2, frame(OP.PING, 'x'), f3]));
        await pong(c, 'x');
        const f = await c.next(WAIT);
        if (f.type !== 'frame' || f.opcode !== OP.TEXT || !f.payload.toString().startsWith('44{')) throw new Error(`expected a CONNECT_ERROR "44{...}", got ${raw.describe(f)}`);
      } },
    { id: 'e.3', desc: 'text with RSV1 -> 1002', run: async (c) => { await c.send(OP.TEXT, '40', { rsv: 4 }); await fails(c, 1002); } },
    { id: 'e.4', desc: 'reserved opcode 3 -> 1002', run: async (c) => { await c.send(3, 'x'); await fails(c, 1002); } },
    { id: 'e.5', desc: 'reserved control opcode 11 -> 1002', run: async (c) => { await c.send(11); await fails(c, 1002); } },
    { id: 'e.6', desc: 'unmasked text -> 1002', run: async (c) => { await c.send(OP.TEXT, '40', { mask: false }); await fails(c, 1002); } },
    { id: 'e.7', desc: 'ping of 126 bytes -> 1002', run: async (c) => { await c.send(OP.PING, Buffer.alloc(126)); await fails(c, 1002); } },
    { id: 'e.8', desc: 'fragmented ping -> 1002', run: async (c) => { await c.write(Buffer.concat([frame(OP.PING, 'a', { fin: false }), frame(OP.CONT, 'b')])); await fails(c, 1002); } },
    { id: 'e.9', desc: 'continuation without a message -> 1002', run: async (c) => { await c.send(OP.CONT, 'x'); await fails(c, 1002); } },
    { id: 'e.10', desc: 'new text while a message is unfinished -> 1002',
      run: async (c) => { await c.write(Buffer.concat([frame(OP.TEXT, '4a', { fin: false }), frame(OP.TEXT, '4b')])); await fails(c, 1002); } },
    { id: 'e.11', desc: 'invalid UTF-8 in one frame -> 1007', run: async (c) => { await c.send(OP.TEXT, Buffer.concat([b('4'), hx('eda080')])); await fails(c, 1007); } },
    { id: 'e.12', desc: 'invalid UTF-8 split across fragments -> 1007',
      run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, [Buffer.concat([b('4'), hx('f4')]), hx('90'), hx('8080')]))); await fails(c, 1007); } },
    { id: 'e.13', desc: 'overlong NUL one byte per fragment -> 1007',
      run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, [b('4'), hx('c0'), hx('80')]))); await fails(c, 1007); } },
    { id: 'e.14', desc: 'close payload of 1 byte -> 1002', run: async (c) => { await c.send(OP.CLOSE, hx('03')); await fails(c, 1002); } },
    { id: 'e.15', desc: 'close code 1005 -> 1002', run: async (c) => { await c.send(OP.CLOSE, closePayload(1005)); await fails(c, 1002); } },
    { id: 'e.16', desc: 'close reason with invalid UTF-8 -> 1007', run: async (c) => { await c.send(OP.CLOSE, closePayload(1000, hx('c0af'))); await fails(c, 1007); } },
    { id: 'e.17', desc: `message of ${MAXP + 1} bytes (maxPayload ${MAXP}) -> 1009`,
      run: async (c) => { await c.send(OP.TEXT, `4${'x'.repeat(MAXP)}`); await fails(c, 1009); } },
    { id: 'e.18', desc: 'fragments adding up past maxPayload -> 1009',
      run: async (c) => { await c.write(Buffer.concat(frags(OP.TEXT, [`4${'x'.repeat(3000)}`, 'y'.repeat(3000)]))); await fails(c, 1009); } },
    { id: 'e.19', desc: '64-bit length of 2^62 -> 1009', run: async (c) => { await c.write(frame(OP.TEXT, Buffer.alloc(0), { len: 2 ** 62, lenForm: 64 })); await fails(c, 1009); } },
    { id: 'e.20', desc: 'normal close -> close 1000', run: async (c) => { await byeNormal(c); } },
  ];
  test(`framing and UTF-8 errors (${cases.length} cases)`, T, async () => { await runCases(target, cases); });
});
