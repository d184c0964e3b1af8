'use strict';
// tests/integration/httpio.test.js — the gateway's connection input path
// (gateway/conn.c) with bytes cut at every place a read can cut them: a
// request head arriving one byte at a time, several requests in one read
// (pipelining), a POST body split across reads, a request pipelined behind a
// parked long-poll GET (answered after the poll, by the deferred re-trigger),
// a WebSocket handshake with the first frame in the same read, and a client
// that sends more than a request behind a parked GET (dropped, the gateway
// goes on).
//
// Design: one gateway in --conformance mode (a raw Engine.IO echo at
// /engine.io/, pingInterval 300 ms; no broker is needed for it), raw TCP
// clients from lib/rawws.js that write exactly the pieces given.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { ROOT, BUILD, Proc, freePort } = require('./lib/harness');
const raw = require('./lib/rawws');

const T = { timeout: 30000 };
let gw;
let port;

before(async () => {
  port = await freePort();
  gw = new Proc('gateway-httpio', path.join(BUILD, 'belfry-gateway'), ['--listen', `127.0.0.1:${port}`,
    '--conformance', '--broker-pub', `tcp://127.0.0.1:${await freePort()}`],
  { logFile: path.join(ROOT, 'tests', 'out', 'httpio', `gateway-${port}.log`) });
  await gw.waitFor(/event=ready/, 10000);
});

after(async () => {
  if (!gw) return;
  const r = await gw.stop('SIGTERM');
  assert.equal(r.code, 0, `clean exit: ${JSON.stringify(r)}`);
});

// The status codes of the responses in data, in order.
const statuses = (data) => [...data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

async function openSession() {
  const r = await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`);
  const body = await r.text();
  assert.equal(r.status, 200, body);
  return JSON.parse(body.slice(1)).sid;
}

async function healthy() {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(r.status, 200);
  assert.equal(await r.text(), 'ok\n');
}

test('a request head written one byte at a time is answered', T, async () => {
  const head = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  const r = await raw.rawHttp(port, [...head], { delayMs: 2, timeoutMs: 10000 });
  assert.deepEqual(statuses(r.data), [200], r.data);
  assert.ok(r.data.endsWith('ok\n'), r.data);
  assert.ok(r.closed, 'Connection: close honoured');
});

test('three requests in one write are answered in order', T, async () => {
  const r = await raw.rawHttp(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' +
    'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n' +
    'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 5000 });
  assert.deepEqual(statuses(r.data), [200, 404, 200], r.data);
  assert.ok(r.closed);
});

test('a POST whose head and body are cut across reads, then a pipelined request', T, async () => {
  const sid = await openSession();
  const head = `POST /engine.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n` +
    'Content-Type: text/plain\r\nContent-Length: 6\r\n\r\n';
  const r = await raw.rawHttp(port, [head.slice(0, 10), head.slice(10), '4he', 'llo' +
    'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'], { delayMs: 20, timeoutMs: 5000 });
  assert.deepEqual(statuses(r.data), [200, 200], r.data);
  assert.match(r.data, /\r\n\r\nok(?!\n)/, 'the POST answered "ok"');
  assert.ok(r.data.endsWith('ok\n'), r.data);
  // the echo of "4hello" waits in the session's queue
  const g = await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling&sid=${sid}`);
  assert.match(await g.text(), /4hello/);
});

test('a request pipelined behind a parked GET is answered after the poll', T, async () => {
  const sid = await openSession();
  // the parked GET is answered by the ping ("2") at pingInterval (300 ms)
  const r = await raw.rawHttp(port,
    `GET /engine.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n\r\n` +
    'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 5000 });
  assert.deepEqual(statuses(r.data), [200, 200], r.data);
  assert.ok(r.data.endsWith('ok\n'), r.data);
  assert.ok(r.closed, 'closed after the pipelined request (Connection: close)');
});

test('a WebSocket handshake with the first frame in the same write', T, async () => {
  const key = Buffer.from('0123456789abcdef').toString('base64');
  const up = 'GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n' +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const frames = Buffer.concat([raw.frame(raw.OP.TEXT, '4hello'), raw.frame(raw.OP.CLOSE, raw.closePayload(1000))]);
  // the frames split across two writes, the first half with the handshake
  const r = await raw.rawHttp(port, [Buffer.concat([Buffer.from(up), frames.subarray(0, 5)]), frames.subarray(5)],
    { delayMs: 20, timeoutMs: 5000 });
  assert.deepEqual(statuses(r.data), [101], r.data);
  assert.match(r.data, /4hello/, 'the message was echoed');
  assert.ok(r.closed, 'closed after the close frame');
});

test('more than a whole request behind a parked GET drops the connection, nothing else', T, async () => {
  const sid = await openSession();
  const head = `GET /engine.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n\r\n`;
  // max-head 16 KiB + max-payload 1e6 (conformance) is the most kept
  const junk = Buffer.alloc(1100000, 'x');
  const r = await raw.rawHttp(port, [head, junk], { delayMs: 50, timeoutMs: 5000 });
  assert.ok(r.closed, 'the connection was closed');
  await healthy();
});
