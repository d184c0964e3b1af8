'use strict';
// Running it like ops do (issue 6): /metrics parsed by a Prometheus
// text-format parser (npm parse-prometheus-text-format) with values that move
// as traffic flows, /healthz and /readyz, and log rotation with SIGHUP, for
// the gateways (on their listen port) and the brokers (on --http; the
// cluster runs a leader and a standby).
//
// Real PostgreSQL, broker and gateways (tests/integration/lib/harness.js).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const parsePrometheus = require('parse-prometheus-text-format');
const { spawn } = require('node:child_process');
const { Cluster, BUILD, freePort } = require('./lib/harness');
const { connect, closeAll } = require('./lib/clients');

const T = { timeout: 60000 };
let cluster;
let logDir;

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'belfry-ops-'));
  cluster = await Cluster.start({ name: 'ops', gateways: 2, brokers: 2 });
});
after(async () => {
  await closeAll();
  if (cluster) await cluster.stop();
  if (logDir) fs.rmSync(logDir, { recursive: true, force: true });
});

// Scrapes a gateway and returns { name -> family } from the parser.
async function scrape(i) {
  const res = await fetch(`${cluster.gateways[i].url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  const families = parsePrometheus(await res.text());
  return Object.fromEntries(families.map((f) => [f.name, f]));
}

const value = (fams, name, labels) => {
  const f = fams[name];
  assert.ok(f, `metric ${name} is exported`);
  const m = labels ? f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels && x.labels[k] === v)) : f.metrics[0];
  assert.ok(m, `metric ${name}${labels ? JSON.stringify(labels) : ''} has a sample`);
  return Number(m.value);
};

// Scrapes broker i's --http endpoint, parsed.
async function scrapeBroker(i) {
  const res = await fetch(`${cluster.brokers[i].httpUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const families = parsePrometheus(await res.text());
  return Object.fromEntries(families.map((f) => [f.name, f]));
}

// Polls until pred(value of broker i's metrics) holds (bounded); returns them.
async function brokerUntil(i, pred, what, ms = 10000) {
  const deadline = Date.now() + ms;
  let fams = await scrapeBroker(i);
  while (!pred(fams) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    fams = await scrapeBroker(i);
  }
  assert.ok(pred(fams), what);
  return fams;
}

const waitFor = async (pred, what, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !pred()) await new Promise((r) => setTimeout(r, 50));
  assert.ok(pred(), what);
};
const has = (f, s) => fs.existsSync(f) && fs.readFileSync(f, 'utf8').includes(s);

// A readiness probe: polls /readyz until 200 (bounded).
async function ready(i) {
  const deadline = Date.now() + 10000;
  let st = 0;
  while (Date.now() < deadline && (st = (await fetch(`${cluster.gateways[i].url}/readyz`)).status) !== 200) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return st;
}

test('gateway /metrics parses as Prometheus text and its values move with traffic', T, async () => {
  assert.equal(await ready(0), 200);
  const before0 = await scrape(0);
  for (const name of ['belfry_gateway_connections', 'belfry_gateway_sessions', 'belfry_gateway_rooms',
    'belfry_gateway_messages_in_total', 'belfry_gateway_messages_out_total', 'belfry_gateway_bytes_out_total',
    'belfry_gateway_auth_failures_total', 'belfry_gateway_protocol_errors_total', 'belfry_gateway_gaps_total',
    'belfry_gateway_replayed_total', 'belfry_gateway_resyncs_total', 'belfry_gateway_slow_consumer_disconnects_total',
    'belfry_gateway_limit_refusals_total', 'belfry_gateway_delivery_latency_seconds', 'belfry_gateway_broker_ready']) {
    assert.ok(before0[name], `${name} is exported`);
  }
  assert.equal(before0.belfry_gateway_delivery_latency_seconds.type, 'HISTOGRAM');
  assert.equal(before0.belfry_gateway_messages_out_total.type, 'COUNTER');
  assert.equal(before0.belfry_gateway_sessions.type, 'GAUGE');

  const c = await connect(cluster.gateways[0].url, { token: cluster.token('ops1'), label: 'ops1' });
  await assert.rejects(connect(cluster.gateways[0].url, { token: 'not-a-token', label: 'bad' }));
  const N = 5;
  for (let i = 0; i < N; i++) await cluster.insert({ room: 'user_ops1', event: 'm', payload: { i } });
  await c.waitForCount((e) => e.event === 'm', N, 10000, 'notifications');

  const after0 = await scrape(0);
  assert.ok(value(after0, 'belfry_gateway_sessions') >= value(before0, 'belfry_gateway_sessions') + 1, 'sessions rose');
  assert.ok(value(after0, 'belfry_gateway_rooms') >= 2, 'user_ops1 and all are subscribed');
  assert.ok(value(after0, 'belfry_gateway_messages_in_total') >= value(before0, 'belfry_gateway_messages_in_total') + N);
  assert.ok(value(after0, 'belfry_gateway_messages_out_total') >= value(before0, 'belfry_gateway_messages_out_total') + N);
  assert.ok(value(after0, 'belfry_gateway_bytes_out_total') > value(before0, 'belfry_gateway_bytes_out_total'));
  assert.ok(value(after0, 'belfry_gateway_auth_failures_total') >= value(before0, 'belfry_gateway_auth_failures_total') + 1);
  assert.equal(value(after0, 'belfry_gateway_broker_ready'), 1);
  const h0 = before0.belfry_gateway_delivery_latency_seconds.metrics[0];
  const h1 = after0.belfry_gateway_delivery_latency_seconds.metrics[0];
  assert.ok(Number(h1.count) >= Number(h0.count) + N, 'the latency histogram counted the deliveries');
  assert.ok(Number(h1.buckets['+Inf']) === Number(h1.count), 'the +Inf bucket equals the count');
  c.close();
});

test('/healthz and /readyz', T, async () => {
  for (const g of cluster.gateways) {
    assert.equal((await fetch(`${g.url}/healthz`)).status, 200);
    assert.equal(await ready(cluster.gateways.indexOf(g)), 200, 'ready: a leading broker answers');
  }
});

test('SIGHUP reopens the gateway log file (log rotation)', T, async () => {
  const file = path.join(logDir, 'gateway.log');
  const port = await freePort();
  const gw = spawn(path.join(BUILD, 'belfry-gateway'), ['--listen', `127.0.0.1:${port}`,
    '--broker-pub', `tcp://127.0.0.1:${await freePort()}`, '--jwt-secret', 'x', '--log-file', file],
  { stdio: 'ignore' });
  const exited = new Promise((r) => gw.on('exit', (code, signal) => r({ code, signal })));
  try {
    await waitFor(() => has(file, 'event=ready'), 'the gateway logs to --log-file');
    fs.renameSync(file, `${file}.1`);
    gw.kill('SIGHUP');
    await waitFor(() => has(file, 'event=log_reopened'), 'a new file after SIGHUP');
    assert.ok(!has(`${file}.1`, 'event=log_reopened'), 'the rotated file is left alone');
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'still serving');
  } finally {
    gw.kill('SIGTERM');
    const r = await exited;
    assert.equal(r.code, 0, `clean exit after SIGTERM: ${JSON.stringify(r)}`);
  }
});

const BROKER_FAMILIES = {
  belfry_broker_leader: 'GAUGE', belfry_broker_standby: 'GAUGE', belfry_broker_db_connected: 'GAUGE',
  belfry_broker_rpc_db_connections: 'GAUGE', belfry_broker_fanout_ready: 'GAUGE',
  belfry_broker_published_messages_total: 'COUNTER', belfry_broker_published_bytes_total: 'COUNTER',
  belfry_broker_publish_errors_total: 'COUNTER', belfry_broker_batch_reads_total: 'COUNTER',
  belfry_broker_batches_total: 'COUNTER', belfry_broker_rows_read_total: 'COUNTER',
  belfry_broker_batch_rows: 'HISTOGRAM', belfry_broker_lag_seconds: 'GAUGE',
  belfry_broker_publish_lag_seconds: 'HISTOGRAM', belfry_broker_last_seq: 'GAUGE',
  belfry_broker_ring_messages: 'GAUGE', belfry_broker_ring_bytes: 'GAUGE', belfry_broker_ring_first_seq: 'GAUGE',
  belfry_broker_oldest_seq: 'GAUGE', belfry_broker_rpc_requests_total: 'COUNTER',
  belfry_broker_rpc_errors_total: 'COUNTER', belfry_broker_rpc_malformed_total: 'COUNTER',
  belfry_broker_rpc_queue_length: 'GAUGE', belfry_broker_db_connects_total: 'COUNTER',
  belfry_broker_db_reconnects_total: 'COUNTER', belfry_broker_retention_prunes_total: 'COUNTER',
  belfry_broker_leadership_terms_total: 'COUNTER',
};

test('broker /metrics parses as Prometheus text and its values move as rows flow', T, async () => {
  const lead = cluster.leaderIndex();
  assert.equal(lead, 0, 'broker 0 started first and leads');
  const before0 = await brokerUntil(0, (f) => value(f, 'belfry_broker_leader') === 1, 'the leader says leader 1');
  for (const [name, type] of Object.entries(BROKER_FAMILIES)) {
    assert.ok(before0[name], `${name} is exported`);
    assert.equal(before0[name].type, type, `${name} is a ${type}`);
  }
  assert.equal(value(before0, 'belfry_broker_db_connected'), 1);
  assert.equal(value(before0, 'belfry_broker_standby'), 0);
  assert.equal(value(before0, 'belfry_broker_fanout_ready'), 1);
  assert.equal(value(before0, 'belfry_broker_leadership_terms_total'), 1);
  assert.ok(value(before0, 'belfry_broker_rpc_requests_total', { op: 'ping' }) > 0, 'the gateways ping the leader');
  for (const op of ['positions', 'replay', 'recover', 'unread', 'mark_read', 'event', 'publish']) {
    value(before0, 'belfry_broker_rpc_requests_total', { op });
    value(before0, 'belfry_broker_rpc_errors_total', { op });
  }

  // Rows: one by one, then one transaction of 10 (one batch of at least 10 rows).
  const N = 5;
  for (let i = 0; i < N; i++) await cluster.insert({ room: 'user_bm', event: 'bm', payload: { i } });
  const c = await cluster.client();
  try {
    await c.query('BEGIN');
    for (let i = 0; i < 10; i++) {
      await c.query("INSERT INTO notifications (room, event, payload) VALUES ('user_bm', 'bm', $1)", [JSON.stringify({ i })]);
    }
    await c.query('COMMIT');
  } finally { await c.end(); }
  const M = N + 10;
  const pub0 = value(before0, 'belfry_broker_published_messages_total');
  const after0 = await brokerUntil(0, (f) => value(f, 'belfry_broker_published_messages_total') >= pub0 + M,
    `the leader published the ${M} rows`);
  assert.ok(value(after0, 'belfry_broker_published_bytes_total') > value(before0, 'belfry_broker_published_bytes_total') + M * 10);
  assert.ok(value(after0, 'belfry_broker_rows_read_total') >= value(before0, 'belfry_broker_rows_read_total') + M);
  assert.ok(value(after0, 'belfry_broker_batches_total') >= value(before0, 'belfry_broker_batches_total') + 2);
  assert.ok(value(after0, 'belfry_broker_batch_reads_total') > value(before0, 'belfry_broker_batch_reads_total'));
  assert.ok(value(after0, 'belfry_broker_last_seq') >= value(before0, 'belfry_broker_last_seq') + M, 'last_seq moved');
  assert.ok(value(after0, 'belfry_broker_ring_messages') >= M, 'the ring holds the rows');
  assert.ok(value(after0, 'belfry_broker_ring_bytes') > 0);
  assert.ok(value(after0, 'belfry_broker_oldest_seq') >= 0);
  assert.equal(value(after0, 'belfry_broker_publish_errors_total'), 0);
  const b0 = before0.belfry_broker_batch_rows.metrics[0];
  const b1 = after0.belfry_broker_batch_rows.metrics[0];
  assert.ok(Number(b1.count) >= Number(b0.count) + 2, 'the batch histogram counted the batches');
  assert.ok(Number(b1.sum) >= Number(b0.sum) + M, 'its sum counts the rows');
  assert.equal(Number(b1.buckets['+Inf']), Number(b1.count), 'the +Inf bucket equals the count');
  assert.ok(Number(b1.count) - Number(b1.buckets['5']) >= Number(b0.count) - Number(b0.buckets['5']) + 1,
    'the 10-row transaction is one batch above 5 rows');
  const l0 = before0.belfry_broker_publish_lag_seconds.metrics[0];
  const l1 = after0.belfry_broker_publish_lag_seconds.metrics[0];
  assert.equal(Number(l1.count) - Number(l0.count), value(after0, 'belfry_broker_published_messages_total') - pub0,
    'one lag observation per published row');
  const lag = value(after0, 'belfry_broker_lag_seconds');
  assert.ok(lag >= 0 && lag < 10, `lag of the last batch is plausible: ${lag}`);

  // The standby publishes nothing and says so.
  const sb = await scrapeBroker(1);
  assert.equal(value(sb, 'belfry_broker_leader'), 0);
  assert.equal(value(sb, 'belfry_broker_standby'), 1);
  assert.equal(value(sb, 'belfry_broker_db_connected'), 1);
  assert.equal(value(sb, 'belfry_broker_published_messages_total'), 0);
  assert.equal(value(sb, 'belfry_broker_batches_total'), 0);
});

test('broker /healthz and /readyz: the leader and a connected standby are ready; 404 and 405', T, async () => {
  for (const [i, body] of [[0, 'ready: leader\n'], [1, 'ready: standby\n']]) {
    const url = cluster.brokers[i].httpUrl;
    const h = await fetch(`${url}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(await h.text(), 'ok\n');
    const r = await fetch(`${url}/readyz`);
    assert.equal(r.status, 200, `broker ${i} /readyz`);
    assert.equal(await r.text(), body);
    assert.equal((await fetch(`${url}/nope`)).status, 404);
    const p = await fetch(`${url}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(p.status, 405);
    assert.equal(p.headers.get('allow'), 'GET, HEAD');
  }
});

// Spawns a broker of its own (not part of the cluster); stdio ignored.
async function spawnBroker(args) {
  const httpPort = await freePort();
  const p = spawn(path.join(BUILD, 'belfry-broker'), ['--pub', `tcp://127.0.0.1:${await freePort()}`,
    '--rpc', `tcp://127.0.0.1:${await freePort()}`, '--http', `127.0.0.1:${httpPort}`, ...args], { stdio: 'ignore' });
  const exited = new Promise((r) => p.on('exit', (code, signal) => r({ code, signal })));
  return { p, exited, url: `http://127.0.0.1:${httpPort}` };
}

test('a broker without its database is alive but not ready', T, async () => {
  const b = await spawnBroker(['--db', `postgresql://nobody@127.0.0.1:${await freePort()}/x?connect_timeout=1`]);
  const metrics = async () => Object.fromEntries(parsePrometheus(await (await fetch(`${b.url}/metrics`)).text())
    .map((x) => [x.name, x]));
  try {
    let st = 0;
    for (let i = 0; i < 100 && st !== 200; i++) {
      st = await fetch(`${b.url}/healthz`).then((r) => r.status, () => 0);
      if (st !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(st, 200, 'alive');
    const r = await fetch(`${b.url}/readyz`);
    assert.equal(r.status, 503);
    assert.match(await r.text(), /database/);
    let f = await metrics();
    assert.equal(value(f, 'belfry_broker_db_connected'), 0);
    assert.equal(value(f, 'belfry_broker_leader'), 0);
    for (let i = 0; i < 100 && value(f, 'belfry_broker_db_reconnects_total') < 1; i++) {
      await new Promise((res) => setTimeout(res, 50));
      f = await metrics();
    }
    assert.ok(value(f, 'belfry_broker_db_reconnects_total') >= 1, 'failed attempts are counted');
  } finally {
    b.p.kill('SIGTERM');
    assert.equal((await b.exited).code, 0);
  }
});

test('SIGHUP reopens the broker log file (log rotation) and does not stop it', T, async () => {
  const file = path.join(logDir, 'broker.log');
  // A standby on the cluster's database: it logs, serves HTTP, never leads.
  const b = await spawnBroker(['--db', cluster.dbUrl, '--log-file', file]);
  try {
    await waitFor(() => has(file, 'event=standby'), 'the broker logs to --log-file');
    fs.renameSync(file, `${file}.1`);
    b.p.kill('SIGHUP');
    await waitFor(() => has(file, 'event=log_reopened'), 'a new file after SIGHUP');
    assert.ok(!has(`${file}.1`, 'event=log_reopened'), 'the rotated file is left alone');
    b.p.kill('SIGHUP');
    await waitFor(() => fs.readFileSync(file, 'utf8').split('event=log_reopened').length === 3, 'a second SIGHUP, same file');
    assert.equal((await fetch(`${b.url}/healthz`)).status, 200, 'still serving');
    assert.equal((await fetch(`${b.url}/readyz`)).status, 200, 'a connected standby is ready');
  } finally {
    b.p.kill('SIGTERM');
    const r = await b.exited;
    assert.equal(r.code, 0, `clean exit after SIGTERM: ${JSON.stringify(r)}`);
  }
  assert.ok(has(file, 'event=stopped'), 'the last lines go to the new file');
});

test('broker failover as the metrics tell it: the standby becomes leader and publishes', T, async () => {
  await cluster.stopBroker('SIGTERM', 0);
  const f = await brokerUntil(1, (x) => value(x, 'belfry_broker_leader') === 1, 'the standby leads', 15000);
  assert.equal(value(f, 'belfry_broker_standby'), 0);
  assert.equal(value(f, 'belfry_broker_leadership_terms_total'), 1);
  const seq0 = value(f, 'belfry_broker_last_seq');
  assert.ok(seq0 > 0, 'the new leader starts at the stored cursor');
  await cluster.insert({ room: 'user_bm', event: 'bm', payload: { after: 'failover' } });
  const g = await brokerUntil(1, (x) => value(x, 'belfry_broker_published_messages_total') >= 1, 'the new leader publishes');
  assert.ok(value(g, 'belfry_broker_last_seq') >= seq0 + 1);
  assert.equal((await fetch(`${cluster.brokers[1].httpUrl}/readyz`)).status, 200);
});

test('SIGTERM drains a gateway: idle keep-alive HTTP connections do not hold it; it stops with none left', T, async () => {
  const g = cluster.gateways[1];
  // an HTTP/1.1 client that keeps its connection after a request, as
  // monitoring agents and load balancers do
  const net = require('node:net');
  const sock = net.connect({ host: '127.0.0.1', port: g.port });
  let got = '';
  let closed = false;
  sock.setEncoding('latin1');
  sock.on('data', (d) => { got += d; });
  sock.on('close', () => { closed = true; });
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor(() => /^HTTP\/1\.1 200[^]*\r\n\r\n/.test(got), 'the keep-alive request is answered');
  assert.doesNotMatch(got, /Connection: close/i, 'the connection was kept');
  const client = await connect(g.url, { token: cluster.token('drain'), label: 'drained' });
  const r = await cluster.stopGateway(1, 'SIGTERM');
  assert.equal(r.forced, false, 'the gateway exited by itself');
  assert.equal(r.code, 0, `clean exit: ${JSON.stringify(r)}`);
  assert.ok(g.proc.lines.some((l) => /event=stopped connections=0\b/.test(l)),
    `it stopped with no connection left, not at the drain deadline:\n${g.proc.tail(5)}`);
  await waitFor(() => closed, 'the idle keep-alive connection was closed');
  await waitFor(() => !client.socket.connected, 'the Socket.IO client was disconnected');
  await cluster.startGateway(1);
});
