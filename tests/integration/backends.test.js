'use strict';
// The fan-out backend matrix: the same checks with --fanout zmq, redis (one
// server), redis with a redis-cluster:// URL (three primaries, sharded
// pub/sub) and nats on the broker and both gateways, against real
// `redis-server` and `nats-server` processes this file starts on free
// loopback ports (and stops by PID): delivery to a personal room across two
// gateways, isolation between users whose room names are prefixes of each
// other, broadcast to `all`, and gap repair while the transport restarts
// mid-stream (the Redis or NATS server is killed and started again; in the
// cluster, the node that owns user_7's slot; with ZeroMQ the transport lives
// in the broker, so the broker is killed and restarted): every client still
// gets every row exactly once and in order. In the cluster, the rooms'
// channels must really be sharded: SSUBSCRIBEd on the primary that owns
// their slot, spread over several primaries, absent from global pub/sub.
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

// Three Redis Cluster primaries (no replicas) on free loopback ports, with
// their nodes-<port>.conf in outDir so that a restarted node rejoins.
class RedisCluster {
  constructor() {
    this.kind = 'redis-cluster';
    this.outDir = path.join(ROOT, 'tests', 'out', 'backends-redis-cluster-server');
    fs.rmSync(this.outDir, { recursive: true, force: true });
    fs.mkdirSync(this.outDir, { recursive: true });
    this.nodes = [];            // { port, busPort, proc }
  }

  async _startNode(node) {
    node.proc = new Proc(`redis-cluster-${node.port}`, 'redis-server', [
      '--cluster-enabled', 'yes', '--cluster-config-file', path.join(this.outDir, `nodes-${node.port}.conf`),
      // the cluster bus port is explicit: port + 10000 may be taken or over 65535
      '--cluster-port', String(node.busPort),
      '--port', String(node.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.outDir, '--loglevel', 'notice',
    ], { logFile: path.join(this.outDir, `redis-${node.port}.log`) });
    await node.proc.waitFor(/Ready to accept connections/);
  }

  async start() {
    for (let i = 0; i < 3; i++) this.nodes.push({ port: await freePort(), busPort: await freePort(), proc: null });
    for (const node of this.nodes) await this._startNode(node);
    execFileSync('redis-cli', ['--cluster', 'create', ...this.nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 60000 });
    await this.waitOk();
    this.ports = this.nodes.map((n) => n.port);
    this.url = `redis-cluster://127.0.0.1:${this.ports[0]}`;
  }

  async waitOk(ms = 20000) {
    const until = Date.now() + ms;
    for (;;) {
      const ok = this.nodes.every((n) => {
        try { return /cluster_state:ok/.test(this.cli(n.port, 'CLUSTER', 'INFO')); } catch (_) { return false; }
      });
      if (ok) return;
      if (Date.now() > until) throw new Error('the Redis cluster did not reach cluster_state:ok');
      await sleep(100);
    }
  }

  cli(port, ...args) {
    return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args],
      { encoding: 'utf8', timeout: 10000 }).trim();
  }

  // Commands on redis-cli's stdin, where "\x00" inside double quotes is a
  // NUL byte (argv cannot carry one); raw output, one line per value.
  cliIn(port, lines) {
    return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port)],
      { encoding: 'utf8', timeout: 10000, input: `${lines.join('\n')}\n` }).split('\n').filter((l) => l !== '');
  }

  // The port of the primary that owns the slot of a channel (redis-cli quoted form).
  ownerOf(quoted) {
    const slot = Number(this.cliIn(this.nodes[0].port, [`CLUSTER KEYSLOT ${quoted}`])[0]);
    for (const line of this.cli(this.nodes[0].port, 'CLUSTER', 'NODES').split('\n')) {
      const f = line.split(' ');
      if (!/master/.test(f[2] || '')) continue;
      for (const r of f.slice(8)) {
        const [lo, hi] = r.split('-').map(Number);
        if (slot >= lo && slot <= (hi === undefined ? lo : hi)) return Number(f[1].split(':')[1].split('@')[0]);
      }
    }
    throw new Error(`no primary owns slot ${slot}`);
  }

  async restartNode(port, signal = 'SIGKILL', downMs = 800) {
    const node = this.nodes.find((n) => n.port === port);
    await node.proc.stop(signal);
    await sleep(downMs);
    await this._startNode(node);
  }

  async stop(signal = 'SIGTERM') {
    for (const n of this.nodes) if (n.proc && n.proc.alive) await n.proc.stop(signal);
  }
}

// redis-cli's quoted form of the shard channel of a room of namespace "/".
const quotedChannel = (room) => `"belfry:/\\x00${room}\\x00"`;

const sum = (ms, name) => ms.reduce((a, m) => a + (m[name] || 0), 0);

for (const kind of ['zmq', 'redis', 'redis-cluster', 'nats']) {
  const fanout = kind === 'redis-cluster' ? 'redis' : kind;
  const isRedis = fanout === 'redis';
  describe(`fan-out backend: ${kind}`, () => {
    let c;
    let server = null;

    before(async () => {
      let args = ['--fanout', fanout];
      if (kind !== 'zmq') {
        server = kind === 'redis-cluster' ? new RedisCluster() : new Server(kind);
        await server.start();
        if (!server.ports) server.ports = [server.port];
        args = [...args, isRedis ? '--redis-url' : '--nats-url', server.url];
      }
      c = await Cluster.start({
        name: `backends-${kind}`,
        gateways: 2,
        brokerArgs: args,
        // a lost tail (no later message reveals it) is found by the periodic check
        gatewayArgs: [...args, '--resync-interval-ms', '1000'],
      });
      // the gateways log which transport they use
      for (const g of c.gateways) await g.proc.waitFor(new RegExp(`event=ready .*fanout=${fanout}\\b`));
    });
    afterEach(() => closeAll());
    after(async () => {
      await closeAll();
      try { if (c) await c.stop(); } finally { if (server) await server.stop(); }
    });

    // A fresh room (no row ever) whose first rows are lost at the transport:
    // Redis drops every pub/sub subscriber whose output buffer passes a
    // limit, here 1 byte (beyond the client's fixed 16 KiB buffer), so each
    // row kills the gateways' subscriptions and
    // nothing later links back to it. The room must start at the broker's
    // head, not at "unknown", for the periodic check to see and replay it.
    const freshRoomLoss = async (t) => {
      const [g0, g1] = c.gateways;
      const user = 700000 + crypto.randomInt(100000);
      const room = `user_${user}`;
      const a = await connect(g0.url, { token: c.token(user), label: `u${user}@gw0` });
      const b = await connect(g1.url, { token: c.token(user), label: `u${user}@gw1` });
      const before = await Promise.all([c.metrics(0), c.metrics(1)]);
      // every node of a cluster: the room's slot may be on any of them
      const cli = (port, ...args) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args],
        { encoding: 'utf8' }).trim();
      const saved = server.ports.map((p) => cli(p, 'CONFIG', 'GET', 'client-output-buffer-limit').split('\n')[1]);
      const n = nonce();
      const N = 3;
      try {
        for (const p of server.ports) assert.equal(cli(p, 'CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 1 1 0'), 'OK');
        for (let i = 0; i < N; i++) {
          // over the 16 KiB a Redis client buffer holds before the limit applies
          await c.insert({ room, event: 'first', payload: { i, nonce: n, pad: 'x'.repeat(20000) } });
          await sleep(100);
        }
      } finally {
        server.ports.forEach((p, i) => cli(p, 'CONFIG', 'SET', 'client-output-buffer-limit', saved[i]));
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
    };

    // first, while the broker has published nothing at all: its head is 0,
    // which is a position (every message to come is above it), not "unknown"
    if (isRedis) {
      test('on a system that has published nothing yet, a fresh room whose first rows are lost is repaired', T, withLogs(freshRoomLoss));
    }

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

    const victim = { zmq: 'broker (ZeroMQ publisher)', 'redis-cluster': 'cluster node owning user_7\'s slot' }[kind] || `${kind} server`;
    test(`gap repair: the ${victim} restarts mid-stream and nothing is lost`, T, withLogs(async (t) => {
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
          restart = kind === 'zmq' ? c.restartBroker('SIGKILL')
            : kind === 'redis-cluster' ? server.restartNode(server.ownerOf(quotedChannel('user_7')), 'SIGKILL')
              : server.restart('SIGKILL');
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
      if (isRedis) {
        // Redis pub/sub keeps nothing for an absent subscriber, and the broker
        // drops what it publishes while disconnected: there was a loss, and it
        // was repaired by replay.
        assert.ok(gaps + resyncs > 0, 'the loss was detected');
        assert.ok(replayed > 0, 'and repaired by replay');
      }
    }));

    if (kind === 'redis-cluster') {
      test('sharded: each room is SSUBSCRIBEd on the primary owning its slot, over several primaries, not globally', T, withLogs(async () => {
        const [g0, g1] = c.gateways;
        const users = [11, 12, 13, 14, 15, 16, 17, 18];
        for (const u of users) {
          await connect(g0.url, { token: c.token(u), label: `u${u}@gw0` });
          await connect(g1.url, { token: c.token(u), label: `u${u}@gw1` });
        }
        const chans = users.map((u) => quotedChannel(`user_${u}`));
        const counts = (port, sub) => {
          const out = server.cliIn(port, [`PUBSUB ${sub} ${chans.join(' ')}`]);
          return users.map((_, i) => Number(out[2 * i + 1]));   // [channel, count, ...]
        };
        // both gateways subscribe every room, on its owner and nowhere else
        const owners = chans.map((q) => server.ownerOf(q));
        let seen;
        const until = Date.now() + 10000 * SLOW;
        for (;;) {
          seen = Object.fromEntries(server.ports.map((p) => [p, counts(p, 'SHARDNUMSUB')]));
          if (users.every((_, i) => seen[owners[i]][i] === 2) || Date.now() > until) break;
          await sleep(100);
        }
        for (const [i, u] of users.entries()) {
          for (const p of server.ports) {
            assert.equal(seen[p][i], p === owners[i] ? 2 : 0, `user_${u}: shard subscribers on node ${p} (owner ${owners[i]})`);
          }
        }
        assert.ok(new Set(owners).size >= 2, `rooms spread over ${new Set(owners).size} primaries`);
        for (const p of server.ports) {
          assert.deepEqual(counts(p, 'NUMSUB'), users.map(() => 0), `no global subscription on node ${p}`);
        }
      }));
    }

    if (kind === 'redis-cluster') {
      // Resharding: the room's slot is reassigned to another primary (CLUSTER
      // SETSLOT ... NODE on every node). The old owner drops the shard
      // subscribers of the slot with a "sunsubscribe" push and answers the
      // broker's next SPUBLISH with -MOVED: both sides refresh the map and
      // move to the new owner; what fell between is replayed.
      test('a slot that moves to another primary: publisher and subscriptions follow it', T, withLogs(async () => {
        const [g0, g1] = c.gateways;
        const user = 800000 + crypto.randomInt(100000);
        const room = `user_${user}`;
        const a = await connect(g0.url, { token: c.token(user), label: `u${user}@gw0` });
        const b = await connect(g1.url, { token: c.token(user), label: `u${user}@gw1` });
        const q = quotedChannel(room);
        const slot = Number(server.cliIn(server.ports[0], [`CLUSTER KEYSLOT ${q}`])[0]);
        const from = server.ownerOf(q);
        const to = server.ports.find((p) => p !== from);
        const toId = server.cli(to, 'CLUSTER', 'MYID');
        const n = nonce();
        const N = 12;
        for (let i = 0; i < N; i++) {
          if (i === 4) {
            for (const p of [to, from, ...server.ports.filter((x) => x !== to && x !== from)]) {
              assert.equal(server.cli(p, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', toId), 'OK');
            }
          }
          await c.insert({ room, event: 'moving', payload: { i, nonce: n } });
          await sleep(50);
        }
        for (const cl of [a, b]) {
          await cl.waitFor((e) => e.event === 'moving' && e.args[0]?.nonce === n && e.args[0].i === N - 1, 30000 * SLOW, `row ${N - 1}`);
        }
        await sleep(GRACE);
        for (const cl of [a, b]) {
          const got = cl.events.filter((e) => e.event === 'moving' && e.args[0]?.nonce === n).map((e) => e.args[0].i);
          assert.deepEqual(got, Array.from({ length: N }, (_, i) => i), `${cl.label}: every row once, in order`);
        }
        assert.equal(server.ownerOf(q), to, 'the slot moved');
        const shardSubs = (p) => Number(server.cliIn(p, [`PUBSUB SHARDNUMSUB ${q}`])[1]);
        assert.equal(shardSubs(to), 2, 'both gateways subscribed on the new owner');
        assert.equal(shardSubs(from), 0, 'and no longer on the old one');
      }));
    }

    if (isRedis) {
      test('a fresh room whose first rows are lost at the transport is repaired', T, withLogs(freshRoomLoss));
    }
  });
}
