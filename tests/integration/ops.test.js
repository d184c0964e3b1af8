'use strict';
// Running it like ops do (issue 6): /metrics parsed by a Prometheus
// text-format parser (npm parse-prometheus-text-format) with values that move
// as traffic flows, /healthz and /readyz, and log rotation with SIGHUP.
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
  cluster = await Cluster.start({ name: 'ops', gateways: 2 });
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
  const waitFor = async (pred, what) => {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !pred()) await new Promise((r) => setTimeout(r, 50));
    assert.ok(pred(), what);
  };
  try {
    const has = (f, s) => fs.existsSync(f) && fs.readFileSync(f, 'utf8').includes(s);
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
