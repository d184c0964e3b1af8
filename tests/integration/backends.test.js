'use strict';
// The fan-out backend matrix: the same checks with --fanout zmq, redis and
// nats on the broker and both gateways, against real `redis-server` and
// `nats-server` processes this file starts on free loopback ports (and stops
// by PID): delivery to a personal room across two gateways, isolation between
// users whose room names are prefixes of each other, broadcast to `all`, and
// gap repair while the transport restarts mid-stream (the Redis or NATS
// server is killed and started again; with ZeroMQ the transport lives in the
// broker, so the broker is killed and restarted): every client still gets
// every row exactly once and in order.
// needs: postgresql redis-server nats-server

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const { Cluster, Proc, ROOT, withLogs, sleep, freePort, SLOW } = require('./lib/harness');
const { connect, closeAll, DEFAULT_WAIT } = require('./lib/clients');

const T = { timeout: 90000 * SLOW };
const nonce = () => crypto.randomBytes(6).toString('hex');
const GRACE = 300;

// One Redis or NATS server on a free loopback port; restart() keeps the port.
class Server {
  constructor(kind) {
    this.kind = kind;
    this.outDir = path.join(ROOT, 'tests', 'out', `backends-${kind}-server`);
    fs.rmSync(this.outDir, { recursive: true, force: true });
    this.proc = null;
  }

  async start() {
    this.port = this.port || await freePort();
    const log = path.join(this.outDir, `${this.kind}-server.log`);
    if (this.kind === 'redis') {
      this.url = `redis://127.0.0.1:${this.port}`;
      this.proc = new Proc('redis-server', 'redis-server', [
        '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--dir', this.outDir, '--loglevel', 'notice',
      ], { logFile: log });
      await this.proc.waitFor(/Ready to accept connections/);
    } else {
      this.url = `nats://127.0.0.1:${this.port}`;
      this.proc = new Proc('nats-server', 'nats-server', ['-a', '127.0.0.1', '-p', String(this.port)],
        { logFile: log });
      await this.proc.waitFor(/Server is ready/);
    }
  }

  async stop(signal = 'SIGTERM') { if (this.proc && this.proc.alive) await this.proc.stop(signal); }

  async restart(signal = 'SIGKILL', downMs = 800) {
    await this.stop(signal);
    await sleep(downMs);
    await this.start();
  }
}

const sum = (ms, name) => ms.reduce((a, m) => a + (m[name] || 0), 0);

for (const kind of ['zmq', 'redis', 'nats']) {
  describe(`fan-out backend: ${kind}`, () => {
    let c;
    let server = null;

    before(async () => {
      let args = ['--fanout', kind];
      if (kind !== 'zmq') {
        server = new Server(kind);
        await server.start();
        args = [...args, kind === 'redis' ? '--redis-url' : '--nats-url', server.url];
      }
      c = await Cluster.start({
        name: `backends-${kind}`,
        gateways: 2,
        brokerArgs: args,
        // a lost tail (no later message reveals it) is found by the periodic check
        gatewayArgs: [...args, '--resync-interval-ms', '1000'],
      });
      // the gateways log which transport they use
      for (const g of c.gateways) await g.proc.waitFor(new RegExp(`event=ready .*fanout=${kind}\\b`));
    });
    afterEach(() => closeAll());
    after(async () => {
      await closeAll();
      try { if (c) await c.stop(); } finally { if (server) await server.stop(); }
    });

    test('a row for user_42 reaches the clients of user 42 on both gateways, once', T, withLogs(async () => {
      const [g0, g1] = c.gateways;
      const a = await connect(g0.url, { token: c.token(42), label: 'u42@gw0' });
      const b = await connect(g1.url, { token: c.token(42), label: 'u42@gw1' });
      const n = nonce();
      const payload = { via: kind, nonce: n, text: 'héllo \u2603' };
      await c.insert({ room: 'user_42', event: 'response', payload });
      for (const cl of [a, b]) {
        const ev = await cl.waitFor((e) => e.event === 'response' && e.args[0]?.nonce === n, DEFAULT_WAIT, `'response' ${n}`);
        assert.deepEqual(ev.args[0], payload);
      }
      await sleep(GRACE);
      for (const cl of [a, b]) assert.equal(cl.events.filter((e) => e.args[0]?.nonce === n).length, 1, `${cl.label} got duplicates`);
    }));

    test('isolation: users 4, 43 and 420 never see user 42\'s rows', T, withLogs(async () => {
      const [g0, g1] = c.gateways;
      const clients = [
        [await connect(g0.url, { token: c.token(42), label: 'u42@gw0' }), 42],
        [await connect(g1.url, { token: c.token(4), label: 'u4@gw1' }), 4],
        [await connect(g0.url, { token: c.token(43), label: 'u43@gw0' }), 43],
        [await connect(g1.url, { token: c.token(420), label: 'u420@gw1' }), 420],
      ];
      const n = nonce();
      for (const u of [42, 4, 420]) await c.insert({ room: `user_${u}`, event: 'secret', payload: { for: u, nonce: n } });
      for (const u of [42, 4, 43, 420]) await c.insert({ room: `user_${u}`, event: 'sentinel', payload: { for: u, nonce: n } });
      for (const [cl, u] of clients) {
        await cl.waitFor((e) => e.event === 'sentinel' && e.args[0]?.nonce === n && e.args[0]?.for === u, DEFAULT_WAIT, `sentinel of ${u}`);
      }
      await sleep(GRACE);
      for (const [cl, u] of clients) {
        const mine = cl.events.filter((e) => e.args[0]?.nonce === n);
        assert.deepEqual(mine.filter((e) => e.args[0].for !== u).map((e) => e.args[0]), [], `${cl.label} got rows of others`);
        assert.equal(mine.filter((e) => e.event === 'secret').length, u === 43 ? 0 : 1, `${cl.label}: its own row once`);
      }
    }));

    test('a row for room "all" reaches every client on both gateways', T, withLogs(async () => {
      const [g0, g1] = c.gateways;
      const cls = [
        await connect(g0.url, { token: c.token(1), label: 'u1@gw0' }),
        await connect(g1.url, { token: c.token(2), label: 'u2@gw1' }),
        await connect(g1.url, { token: c.token(3), label: 'u3@gw1' }),
      ];
      const n = nonce();
      await c.insert({ room: 'all', event: 'announce', payload: { nonce: n } });
      for (const cl of cls) await cl.waitFor((e) => e.event === 'announce' && e.args[0]?.nonce === n, DEFAULT_WAIT, `announce ${n}`);
      await sleep(GRACE);
      for (const cl of cls) assert.equal(cl.events.filter((e) => e.args[0]?.nonce === n).length, 1, `${cl.label} got duplicates`);
    }));

    test(`gap repair: the ${kind === 'zmq' ? 'broker (ZeroMQ publisher)' : `${kind} server`} restarts mid-stream and nothing is lost`, T, withLogs(async (t) => {
      const [g0, g1] = c.gateways;
      const a = await connect(g0.url, { token: c.token(7), label: 'u7@gw0' });
      const b = await connect(g1.url, { token: c.token(7), label: 'u7@gw1' });
      const before = await Promise.all([c.metrics(0), c.metrics(1)]);
      const n = nonce();
      const N = 150;
      let restart = null;
      for (let i = 0; i < N; i++) {
        await c.insert({ room: 'user_7', event: 'tick', payload: { i, nonce: n } });
        if (i === 40) {
          restart = kind === 'zmq' ? c.restartBroker('SIGKILL') : server.restart('SIGKILL');
        }
        await sleep(10);
      }
      await restart;
      // The gateway delivers a room in seq order (a later message waits
      // behind a replay), so once the last tick is in, anything missing or
      // repeated before it is a loss or a duplicate.
      for (const cl of [a, b]) {
        await cl.waitFor((e) => e.event === 'tick' && e.args[0]?.nonce === n && e.args[0].i === N - 1, 30000 * SLOW, `tick ${N - 1}`);
      }
      await sleep(GRACE);
      for (const cl of [a, b]) {
        const got = cl.events.filter((e) => e.event === 'tick' && e.args[0]?.nonce === n).map((e) => e.args[0].i);
        assert.deepEqual(got, Array.from({ length: N }, (_, i) => i), `${cl.label}: every tick once, in order`);
      }
      const afterM = await Promise.all([c.metrics(0), c.metrics(1)]);
      const gaps = sum(afterM, 'belfry_gateway_gaps_total') - sum(before, 'belfry_gateway_gaps_total');
      const resyncs = sum(afterM, 'belfry_gateway_resyncs_total') - sum(before, 'belfry_gateway_resyncs_total');
      const replayed = sum(afterM, 'belfry_gateway_replayed_total') - sum(before, 'belfry_gateway_replayed_total');
      t.diagnostic(`${kind}: gaps=${gaps} resyncs=${resyncs} replayed=${replayed}`);
      if (kind === 'redis') {
        // Redis pub/sub keeps nothing for an absent subscriber, and the broker
        // drops what it publishes while disconnected: there was a loss, and it
        // was repaired by replay.
        assert.ok(gaps + resyncs > 0, 'the loss was detected');
        assert.ok(replayed > 0, 'and repaired by replay');
      }
    }));

    if (kind === 'redis') {
      // A fresh room (no row ever) whose first rows are lost at the transport:
      // Redis drops every pub/sub subscriber whose output buffer passes a
      // limit, here 1 byte (beyond the client's fixed 16 KiB buffer), so each
      // row kills the gateways' subscriptions and
      // nothing later links back to it. The room must start at the broker's
      // head, not at "unknown", for the periodic check to see and replay it.
      test('a fresh room whose first rows are lost at the transport is repaired', T, withLogs(async (t) => {
        const [g0, g1] = c.gateways;
        const user = 700000 + crypto.randomInt(100000);
        const room = `user_${user}`;
        const a = await connect(g0.url, { token: c.token(user), label: `u${user}@gw0` });
        const b = await connect(g1.url, { token: c.token(user), label: `u${user}@gw1` });
        const before = await Promise.all([c.metrics(0), c.metrics(1)]);
        const cli = (...args) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(server.port), ...args],
          { encoding: 'utf8' }).trim();
        const saved = cli('CONFIG', 'GET', 'client-output-buffer-limit').split('\n')[1];
        const n = nonce();
        const N = 3;
        try {
          assert.equal(cli('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 1 1 0'), 'OK');
          for (let i = 0; i < N; i++) {
            // over the 16 KiB a Redis client buffer holds before the limit applies
            await c.insert({ room, event: 'first', payload: { i, nonce: n, pad: 'x'.repeat(20000) } });
            await sleep(100);
          }
        } finally {
          cli('CONFIG', 'SET', 'client-output-buffer-limit', saved);
        }
        for (const cl of [a, b]) {
          await cl.waitFor((e) => e.event === 'first' && e.args[0]?.nonce === n && e.args[0].i === N - 1, 30000 * SLOW, `row ${N - 1}`);
        }
        await sleep(GRACE);
        for (const cl of [a, b]) {
          const got = cl.events.filter((e) => e.event === 'first' && e.args[0]?.nonce === n).map((e) => e.args[0].i);
          assert.deepEqual(got, [0, 1, 2], `${cl.label}: every row once, in order`);
        }
        const afterM = await Promise.all([c.metrics(0), c.metrics(1)]);
        const replayed = sum(afterM, 'belfry_gateway_replayed_total') - sum(before, 'belfry_gateway_replayed_total');
        t.diagnostic(`replayed=${replayed}`);
        assert.ok(replayed > 0, 'the rows came by replay: the transport really lost them');
      }));
    }
  });
}
