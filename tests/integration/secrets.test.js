'use strict';
// tests/integration/secrets.test.js — no secret ever appears in a log or in
// the metrics: not the JWT secret, not the database password, not a client's
// token.
//
// Design: a cluster with a distinctive JWT secret; a PostgreSQL role with a
// distinctive password, and the broker restarted with a database URL that
// carries it (the harness's PostgreSQL trusts local connections, so the
// password is not checked, but the broker is handed it like in production). A
// second broker is started with the same kind of URL pointing at a closed port,
// and once more with a keyword/value connection string (password=...), so
// that connection errors are logged too. The processes log at debug
// level (one gateway with --log-json). They are exercised with good tokens,
// tokens signed with another secret, tokens with the secret in a claim,
// expired tokens, events, joins and a delivered row. Then every log file of
// the run and a /metrics scrape of each gateway are searched for the secret,
// the password (also URL-encoded) and the good tokens' signatures. The
// harness's own "--- ... start: <command line>" lines are not the programs'
// output and are left out of the search.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { Cluster, Proc, BUILD, ROOT, withLogs, mintJwt, freePort, sleep, SLOW } = require('./lib/harness');
const { connect, expectConnectError, closeAll, DEFAULT_WAIT } = require('./lib/clients');

const T = { timeout: 90000 * SLOW };
const JWT_SECRET = `JwtS3cret-${crypto.randomBytes(6).toString('hex')}-belfry`;
const DB_PASSWORD = `DbPa55-${crypto.randomBytes(6).toString('hex')}-w0rd`;
const BUS_PASSWORD = `BusPa55-${crypto.randomBytes(6).toString('hex')}-w0rd`;

function getText(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

describe('secrets stay out of logs and metrics', () => {
  let c;
  let failing = null;
  let failingKw = null;
  const busProcs = [];
  const goodTokens = [];

  before(async () => {
    c = await Cluster.start({ name: 'secrets', gateways: 2, jwtSecret: JWT_SECRET, gatewayArgsFor: (i) => (i === 1 ? ['--log-json'] : []) });
    await c.query(`CREATE ROLE belfry_app LOGIN SUPERUSER PASSWORD '${DB_PASSWORD}'`);
    const u = new URL(c.dbUrl);
    u.username = 'belfry_app';
    u.password = DB_PASSWORD;
    c.dbUrl = u.toString();
    await c.restartBroker();
    await c.waitLeader();
    // a broker whose database is unreachable: it logs connection failures
    const port = await freePort();
    const bad = new URL(c.dbUrl);
    bad.port = String(port);
    failing = new Proc('broker-nodb', path.join(BUILD, 'belfry-broker'), [
      '--db', bad.toString(), '--pub', `tcp://127.0.0.1:${await freePort()}`, '--rpc', `tcp://127.0.0.1:${await freePort()}`,
      '--log-level', 'debug', '--http', '',
    ], { logFile: path.join(ROOT, 'tests', 'out', 'secrets', 'broker-nodb.log') });
    // the same with a keyword/value connection string
    failingKw = new Proc('broker-nodb-kw', path.join(BUILD, 'belfry-broker'), [
      '--db', `host=127.0.0.1 port=${port} dbname=belfry user=belfry_app password=${DB_PASSWORD}`,
      '--pub', `tcp://127.0.0.1:${await freePort()}`, '--rpc', `tcp://127.0.0.1:${await freePort()}`, '--log-level', 'debug',
      '--http', '',
    ], { logFile: path.join(ROOT, 'tests', 'out', 'secrets', 'broker-nodb-kw.log') });
    // brokers and gateways handed Redis / NATS URLs with a password (the
    // servers are not there: they log their start and their retries)
    const closed = await freePort();
    for (const url of [`redis://:${BUS_PASSWORD}@127.0.0.1:${closed}`, `redis-cluster://:${BUS_PASSWORD}@127.0.0.1:${closed}`,
      `nats://belfry:${BUS_PASSWORD}@127.0.0.1:${closed}`]) {
      const kind = url.startsWith('nats') ? 'nats' : 'redis';
      const flag = kind === 'nats' ? '--nats-url' : '--redis-url';
      const tag = url.split(':')[0];
      busProcs.push(new Proc(`broker-${tag}`, path.join(BUILD, 'belfry-broker'), [
        '--db', `postgresql://belfry@127.0.0.1:${closed}/belfry`, '--fanout', kind, flag, url, '--pub', `tcp://127.0.0.1:${await freePort()}`,
        '--rpc', `tcp://127.0.0.1:${await freePort()}`, '--log-level', 'debug', '--http', '',
      ], { logFile: path.join(ROOT, 'tests', 'out', 'secrets', `broker-${tag}.log`) }));
      busProcs.push(new Proc(`gateway-${tag}`, path.join(BUILD, 'belfry-gateway'), [
        '--listen', `127.0.0.1:${await freePort()}`, '--broker-rpc', c.brokerRpcList(), '--jwt-secret', JWT_SECRET,
        '--fanout', kind, flag, url, '--log-level', 'debug',
      ], { logFile: path.join(ROOT, 'tests', 'out', 'secrets', `gateway-${tag}.log`) }));
    }
  });
  after(async () => {
    await closeAll();
    if (failing) await failing.stop('SIGTERM');
    if (failingKw) await failingKw.stop('SIGTERM');
    for (const p of busProcs) await p.stop('SIGTERM');
    if (c) await c.stop();
  });

  test('exercise the cluster, then search every log and /metrics for the secret, the password and the tokens', T, withLogs(async () => {
    assert.ok(c.broker.alive, 'the broker did not start with the password URL');
    const now = Math.floor(Date.now() / 1000);
    const outDir0 = path.join(ROOT, 'tests', 'out', 'secrets');
    for (const [i, g] of c.gateways.entries()) {
      const t = c.token(`s${i}`, { expIn: 600 });
      goodTokens.push(t);
      const k = await connect(g.url, { token: t, label: `good ${i}` });
      await new Promise((r) => k.socket.emit('join', 'user_nope', r));
      await new Promise((r) => k.socket.emit('unread', r));
      await new Promise((r) => k.socket.emit('mark_read', 1, r));
      const n = crypto.randomBytes(4).toString('hex');
      await c.insert({ room: `user_s${i}`, event: 'hello', payload: { nonce: n } });
      await k.waitFor((e) => e.event === 'hello' && e.args[0]?.nonce === n, DEFAULT_WAIT, 'row');
      const tq = c.token(`q${i}`);
      goodTokens.push(tq);
      (await connect(g.url, { queryToken: tq, transports: ['polling'], label: `query ${i}` })).close();
      for (const bad of [
        mintJwt(`b${i}`, { secret: 'wrong-secret' }),
        mintJwt({ sub: `b${i}`, note: JWT_SECRET, exp: now + 60 }, { secret: 'wrong-secret' }),
        c.token(`b${i}`, { expIn: -60 }),
        mintJwt(`b${i}`, { alg: 'none' }),
        `${JWT_SECRET}.${JWT_SECRET}.${JWT_SECRET}`,
      ]) {
        await expectConnectError(g.url, { token: bad, label: `bad ${i}` });
      }
      k.close();
    }
    for (const p of [failing, failingKw]) await p.waitFor(/event=db_down/, 10000 * SLOW);
    for (const p of busProcs) await p.waitFor(/event=(start|ready)\b/, 10000 * SLOW);
    // a malformed URL with a password: a settings error that names the URL
    // without the password, and exit code 2
    const { spawnSync } = require('node:child_process');
    for (const [flag, url] of [['--redis-url', `redis://:${BUS_PASSWORD}@127.0.0.1:notaport`],
      ['--redis-url', `redis-cluster://:${BUS_PASSWORD}@`]]) {
      const r = spawnSync(path.join(BUILD, 'belfry-gateway'), ['--listen', `127.0.0.1:${await freePort()}`, '--jwt-secret', JWT_SECRET,
        '--fanout', flag === '--nats-url' ? 'nats' : 'redis', flag, url], { encoding: 'utf8', timeout: 10000 });
      const out = `${r.stdout}${r.stderr}`;
      fs.writeFileSync(path.join(outDir0, `bad-url-${flag.slice(2)}-${url.split(':')[0]}.log`), out);
      assert.equal(r.status, 2, `a malformed ${url.split(':')[0]} URL is a settings error: ${out}`);
    }
    for (const p of busProcs) await p.waitFor(/event=fanout_connect_failed|event=fanout_/, 10000 * SLOW);
    await sleep(300);

    const needles = [
      ['the JWT secret', JWT_SECRET],
      ['the database password', DB_PASSWORD],
      ['the database password, URL-encoded', encodeURIComponent(DB_PASSWORD)],
      ['the Redis / NATS password', BUS_PASSWORD],
      ...goodTokens.map((t, i) => [`the signature of good token ${i}`, t.split('.')[2]]),
    ];
    const hits = [];
    const outDir = path.join(ROOT, 'tests', 'out', 'secrets');
    for (const f of fs.readdirSync(outDir)) {
      const file = path.join(outDir, f);
      if (!fs.statSync(file).isFile()) continue;
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, n) => {
        if (/^--- \S+ (start|exit):/.test(line)) return;      // the harness's own lines
        for (const [what, s] of needles) {
          if (line.includes(s)) hits.push(`${what} in ${f}:${n + 1}: ${line.slice(0, 300)}`);
        }
      });
    }
    for (const [i, g] of c.gateways.entries()) {
      const m = await getText(g.port, '/metrics');
      assert.match(m, /belfry_gateway_auth_failures_total [1-9]/, 'the bad tokens were not even counted');
      for (const [what, s] of needles) if (m.includes(s)) hits.push(`${what} in /metrics of gateway${i}`);
    }
    assert.deepEqual(hits, [], `secrets found:\n  ${hits.join('\n  ')}`);
  }));
});
