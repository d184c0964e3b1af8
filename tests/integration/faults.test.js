'use strict';
// tests/integration/faults.test.js — the delivery guarantee under real faults
// (issue 4, docs/delivery.md): every committed row reaches every subscribed
// official socket.io-client exactly once, in commit order per room, while a
// broker is SIGKILLed (with a standby, and alone then restarted), a gateway is
// SIGKILLed (its clients recover on the other one), PostgreSQL is restarted,
// the fan-out is forced to drop, and a client comes back after retention.
//
// Design: each scenario starts its own cluster (PostgreSQL, broker(s), two
// gateways) and 17 clients: users 1..8 on each gateway (websocket) plus one
// on the default transports (polling, then upgrade). A writer loop (4 pg
// connections, multi-row INSERTs, paced over a few seconds, bounded in rows
// and time) streams at least 20,000 rows into user_1..user_8 and `all`; each
// row's payload names its writer, statement and position, so the commit
// order of one writer is known. A fault fires when a share of the rows is
// in. The truth is the table itself: after the stream, the rows of this run
// are read back, and every client must end with exactly the rows of its two
// rooms — none missing, none twice (by row and by seq), seqs rising per room,
// each writer's rows in commit order, every row with the same seq on every
// client, and every reconnect reported `recovered === true`. A failure
// writes tests/out/<cluster>/report.json (missing rows with their ids and
// recomputed seqs, duplicates, metrics, gateway log counts) and says whether
// the broker's RPC is still missing ("unknown op") or something is broken.

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const pg = require('pg');
const { io } = require('socket.io-client');
const { Cluster, BUILD, SLOW, sleep, withLogs } = require('./lib/harness');

const USERS = [1, 2, 3, 4, 5, 6, 7, 8];
const ROOMS = [...USERS.map((u) => `user_${u}`), 'all'];
const EVENT = 'fault_row';
const TOTAL = Number(process.env.BELFRY_FAULT_ROWS || 20000);
const WRITERS = 4;
const STREAM_MS = 6000;             // pacing of the stream (rows spread over it)
const HARD_MS = 60000 * SLOW;       // writers give up after this
const CATCHUP_MS = 30000 * SLOW;    // clients must have everything within this after the stream
const CONNECT_MS = 10000 * SLOW;
const T = { timeout: 180000 * SLOW };
const GW_ARGS = ['--resync-interval-ms', '1000', '--drain-timeout-ms', '2000'];
const INSERT_SQL = `INSERT INTO notifications (room, event, payload)
  SELECT r, '${EVENT}', p FROM unnest($1::text[], $2::jsonb[]) AS t(r, p)`;

// ---------------------------------------------------------------------------
// Broker capabilities (flags appear in --help when implemented).
let brokerHelp = null;
function brokerHas(flag) {
  if (brokerHelp === null) {
    const r = spawnSync(path.join(BUILD, 'belfry-broker'), ['--help'], { encoding: 'utf8', timeout: 10000 });
    brokerHelp = `${r.stdout || ''}${r.stderr || ''}`;
  }
  return brokerHelp.includes(flag);
}
function requireBrokerFlag(flag) {
  if (!brokerHas(flag)) {
    assert.fail(`waiting for the broker: belfry-broker does not know ${flag} yet (not in --help)`);
  }
}

// ---------------------------------------------------------------------------
// A tiny TCP proxy in this process: new connections go to target() at the
// moment they are accepted; kill the target and they break.
function startProxy(target) {
  const socks = new Set();
  const srv = net.createServer((down) => {
    const up = net.connect(target(), '127.0.0.1');
    socks.add(down); socks.add(up);
    const end = () => { down.destroy(); up.destroy(); socks.delete(down); socks.delete(up); };
    down.on('error', end); up.on('error', end); down.on('close', end); up.on('close', end);
    down.pipe(up); up.pipe(down);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${srv.address().port}`,
    close: () => { for (const s of socks) s.destroy(); return new Promise((r) => srv.close(() => r())); },
  })));
}

// ---------------------------------------------------------------------------
// A counting client: the official socket.io-client with reconnection (and so
// connection-state recovery) on.
const keySeq = new Map();     // row key -> seq, across all clients of a scenario
const seqConflicts = [];

function openClient(url, user, token, { label, transports } = {}) {
  const socket = io(url, {
    transports: transports || ['websocket'],
    forceNew: true,
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 1000,
    randomizationFactor: 0,
    timeout: CONNECT_MS,
    auth: { token },
  });
  const cl = {
    label, user, socket,
    rooms: new Set([`user_${user}`, 'all']),
    got: new Map(),            // key -> times received
    seqs: new Set(),
    dupKeys: [], dupSeqs: [], orderErrors: [], wrongRoom: [], noOffset: [], maxSeq: 0,
    lastSeqByRoom: new Map(), lastPosByWriterRoom: new Map(),
    connects: [], disconnects: [], otherEvents: 0, log: [],
  };
  socket.on('connect', () => cl.connects.push({ at: Date.now(), recovered: socket.recovered === true }));
  socket.on('disconnect', (reason) => cl.disconnects.push({ at: Date.now(), reason }));
  socket.on('connect_error', (e) => cl.disconnects.push({ at: Date.now(), reason: `connect_error: ${e.message}` }));
  socket.onAny((event, ...args) => {
    if (event !== EVENT) { cl.otherEvents++; return; }
    const p = args[0] || {};
    const offset = args.length > 1 ? args[args.length - 1] : undefined;
    const key = `${p.w}:${p.n}:${p.i}`;
    const seq = typeof offset === 'string' ? Number(offset) : NaN;
    if (!Number.isSafeInteger(seq) || seq <= 0) cl.noOffset.push({ key, offset });
    const times = (cl.got.get(key) || 0) + 1;
    cl.got.set(key, times);
    if (times > 1) cl.dupKeys.push({ key, seq, room: p.room });
    if (cl.seqs.has(seq)) cl.dupSeqs.push(seq);
    cl.seqs.add(seq);
    if (seq > cl.maxSeq) cl.maxSeq = seq;
    if (!cl.rooms.has(p.room)) cl.wrongRoom.push({ key, room: p.room, seq });
    const last = cl.lastSeqByRoom.get(p.room) || 0;
    if (seq <= last) cl.orderErrors.push(`room ${p.room}: seq ${seq} after ${last}`);
    cl.lastSeqByRoom.set(p.room, seq);
    const wr = `${p.w}/${p.room}`;
    const pos = p.n * 1e6 + p.i;
    const lastPos = cl.lastPosByWriterRoom.get(wr);
    if (lastPos !== undefined && pos <= lastPos) cl.orderErrors.push(`writer ${p.w} room ${p.room}: row n=${p.n} i=${p.i} (seq ${seq}) arrived after a row that writer committed later`);
    cl.lastPosByWriterRoom.set(wr, pos);
    const known = keySeq.get(key);
    if (known === undefined) keySeq.set(key, seq);
    else if (known !== seq && seqConflicts.length < 50) seqConflicts.push({ key, seqs: [known, seq], client: label });
  });
  return cl;
}

async function waitConnected(clients, ms = CONNECT_MS) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (clients.every((c) => c.socket.connected)) return;
    await sleep(50);
  }
  const bad = clients.filter((c) => !c.socket.connected).map((c) => `${c.label} (${JSON.stringify(c.disconnects.slice(-2))})`);
  throw new Error(`clients not connected within ${ms} ms: ${bad.join(', ')}`);
}

// 8 users on each gateway (websocket) + one default-transports client on
// gateway 0. urls[g] may be a proxy in front of gateway g.
function openClients(c, urls) {
  const clients = [];
  urls.forEach((url, g) => {
    for (const u of USERS) clients.push(openClient(url, u, c.token(u), { label: `u${u}@gw${g}` }));
  });
  clients.push(openClient(urls[0], 3, c.token(3), { label: 'u3@gw0(polling+upgrade)', transports: ['polling', 'websocket'] }));
  return clients;
}

// ---------------------------------------------------------------------------
// The writer loop. faults: [{at: share of TOTAL, name, fn}] started (not
// awaited by the writers) when that many rows are in.
async function stream(c, run, { total = TOTAL, writers = WRITERS, perStmt = 5, durationMs = STREAM_MS, faults = [] } = {}) {
  const start = Date.now();
  const hardDeadline = start + HARD_MS;
  const st = { inserted: 0, errors: 0, lastError: null, faultRuns: [] };
  const pending = faults.map((f) => ({ ...f, fired: false }));
  const fire = () => {
    for (const f of pending) {
      if (!f.fired && st.inserted >= f.at * total) {
        f.fired = true;
        const t0 = Date.now();
        const atRows = st.inserted;
        st.faultRuns.push(Promise.resolve().then(f.fn).then(
          () => ({ name: f.name, atRows, ms: Date.now() - t0 }),
          (e) => { throw new Error(`fault "${f.name}" failed: ${e.stack || e}`); }));
      }
    }
  };
  const per = Math.ceil(total / writers);
  const writer = async (w) => {
    let client = null;
    let n = 0;
    let k = 0;
    while (k < per && Date.now() < hardDeadline) {
      const due = start + (k / per) * durationMs;
      if (due > Date.now()) await sleep(due - Date.now());
      const cnt = Math.min(perStmt, per - k);
      const rooms = [];
      const payloads = [];
      for (let i = 0; i < cnt; i++) {
        const room = ROOMS[(w * 5 + k + i) % ROOMS.length];
        rooms.push(room);
        payloads.push(JSON.stringify({ run, w, n, i, room }));
      }
      try {
        if (!client) {
          client = new pg.Client({ connectionString: c.dbUrl, connectionTimeoutMillis: 5000, query_timeout: 15000 });
          client.on('error', () => {});
          await client.connect();
        }
        await client.query(INSERT_SQL, [rooms, payloads]);
        k += cnt;
        st.inserted += cnt;
        fire();
      } catch (e) {
        // Possibly committed anyway: the table is the truth, and a retry is
        // a new statement (new n), so both copies would be distinct rows.
        st.errors++;
        st.lastError = e.message;
        if (client) client.end().catch(() => {});
        client = null;
        await sleep(100);
      }
      n++;
    }
    if (client) await client.end().catch(() => {});
  };
  await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
  st.ms = Date.now() - start;
  st.faults = await Promise.all(st.faultRuns);
  for (const f of pending) if (!f.fired) throw new Error(`fault "${f.name}" never fired (${st.inserted} rows inserted)`);
  return st;
}

// Rows of this run as committed: [{id, room, key}]. Retries after a
// PostgreSQL restart, so the pool may need a moment.
async function committedRows(c, run) {
  let last;
  for (let i = 0; i < 40; i++) {
    try {
      const r = await c.query(`SELECT id, room, payload->>'w' AS w, payload->>'n' AS n, payload->>'i' AS i
                                 FROM notifications WHERE event = $1 AND payload->>'run' = $2 ORDER BY id`, [EVENT, run]);
      return r.rows.map((x) => ({ id: Number(x.id), room: x.room, key: `${x.w}:${x.n}:${x.i}` }));
    } catch (e) { last = e; await sleep(250); }
  }
  throw last;
}

function missingOf(cl, rows) {
  return rows.filter((r) => cl.rooms.has(r.room) && !cl.got.has(r.key));
}

// Waits until every client has every row of its rooms (bounded), then a
// little longer so that late duplicates show.
async function awaitAll(clients, rows, ms = CATCHUP_MS) {
  const deadline = Date.now() + ms;
  const expected = new Map(clients.map((cl) => [cl, rows.filter((r) => cl.rooms.has(r.room)).length]));
  while (Date.now() < deadline) {
    if (clients.every((cl) => cl.got.size >= expected.get(cl))) break;
    await sleep(200);
  }
  await sleep(1000);
}

// The seq each row was published with, recomputed from belfry_batches
// (docs/broker.md), for the evidence of a failure.
async function recomputeSeqs(c, ids) {
  if (!ids.length) return new Map();
  const r = await c.query(`
    SELECT s.id, s.seq FROM (
      SELECT n.id, b.first_seq + row_number() OVER (PARTITION BY b.batch_id ORDER BY n.id) - 1 AS seq
        FROM belfry_batches b
        JOIN LATERAL (SELECT snap FROM belfry_batches p WHERE p.batch_id < b.batch_id
                       ORDER BY p.batch_id DESC LIMIT 1) p ON true
        JOIN notifications n ON n.txid >= pg_snapshot_xmin(p.snap) AND n.txid < pg_snapshot_xmax(b.snap)
                            AND NOT pg_visible_in_snapshot(n.txid, p.snap)
                            AND pg_visible_in_snapshot(n.txid, b.snap)
       WHERE b.row_count > 0) s
     WHERE s.id = ANY($1::bigint[])`, [ids]).catch((e) => ({ rows: [], error: e.message }));
  return new Map(r.rows.map((x) => [Number(x.id), Number(x.seq)]));
}

// Lines of a log matching re, grouped by their reason="..." (or the whole event).
function logCounts(file) {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch (_) { return {}; }
  const out = {};
  for (const line of text.split('\n')) {
    const m = line.match(/event=(gap|replay_failed|recovery_failed|replay_queue_overflow|broker_epoch|positions_failed|slow_consumer\w*|broker_disconnected|broker_connected)\b/);
    if (!m) continue;
    const r = line.match(/reason="([^"]*)"/);
    const k = r ? `${m[1]} (${r[1]})` : m[1];
    out[k] = (out[k] || 0) + 1;
  }
  return out;
}

async function gatewayMetrics(c) {
  const out = {};
  for (let g = 0; g < c.gateways.length; g++) {
    if (!c.gateways[g] || !c.gateways[g].proc.alive) { out[`gateway${g}`] = 'dead'; continue; }
    const m = await c.metrics(g).catch((e) => ({ error: e.message }));
    const pick = {};
    for (const [k, v] of Object.entries(m)) if (/gaps|replay|resync|duplicates|broker_ready|messages_in|slow_consumer/.test(k) || k === 'error') pick[k] = v;
    out[`gateway${g}`] = pick;
  }
  return out;
}

// The verdict: throws with a summary (and writes report.json) on any loss,
// duplicate, disorder, wrong room or failed recovery.
async function verify(c, clients, rows, st, t, { expectRecovered = true } = {}) {
  const problems = [];
  const report = { rows: rows.length, stream: { inserted: st.inserted, errors: st.errors, lastError: st.lastError, ms: st.ms, faults: st.faults }, clients: {} };
  const allMissingIds = new Set();
  for (const cl of clients) {
    const missing = missingOf(cl, rows);
    missing.slice(0, 200).forEach((r) => allMissingIds.add(r.id));
    const expected = rows.filter((r) => cl.rooms.has(r.room)).length;
    const badReconnects = cl.connects.slice(1).filter((x) => !x.recovered);
    const entry = {
      expected, distinctReceived: cl.got.size, missing: missing.length, duplicates: cl.dupKeys.length,
      duplicateSeqs: cl.dupSeqs.length, orderErrors: cl.orderErrors.length, wrongRoom: cl.wrongRoom.length,
      noOffset: cl.noOffset.length, connects: cl.connects, disconnects: cl.disconnects.slice(0, 10),
    };
    if (missing.length) entry.firstMissing = missing.slice(0, 20);
    if (cl.dupKeys.length) entry.firstDuplicates = cl.dupKeys.slice(0, 20);
    if (cl.orderErrors.length) entry.firstOrderErrors = cl.orderErrors.slice(0, 10);
    if (cl.wrongRoom.length) entry.firstWrongRoom = cl.wrongRoom.slice(0, 10);
    if (cl.noOffset.length) entry.firstNoOffset = cl.noOffset.slice(0, 5);
    report.clients[cl.label] = entry;
    const what = [];
    if (missing.length) what.push(`${missing.length}/${expected} lost`);
    if (cl.dupKeys.length) what.push(`${cl.dupKeys.length} duplicated (seqs ${cl.dupKeys.slice(0, 5).map((d) => d.seq).join(',')}…)`);
    if (cl.dupSeqs.length && !cl.dupKeys.length) what.push(`${cl.dupSeqs.length} seqs seen twice`);
    if (cl.orderErrors.length) what.push(`${cl.orderErrors.length} out of order (${cl.orderErrors[0]})`);
    if (cl.wrongRoom.length) what.push(`${cl.wrongRoom.length} from rooms it is not in`);
    if (cl.noOffset.length) what.push(`${cl.noOffset.length} without an offset`);
    if (expectRecovered && badReconnects.length) what.push(`${badReconnects.length} reconnect(s) with recovered === false`);
    if (what.length) problems.push(`${cl.label}: ${what.join('; ')}`);
  }
  if (seqConflicts.length) problems.push(`the same row arrived with different seqs: ${JSON.stringify(seqConflicts.slice(0, 5))}`);
  const seqOf = await recomputeSeqs(c, [...allMissingIds]);
  for (const e of Object.values(report.clients)) {
    if (e.firstMissing) e.firstMissing = e.firstMissing.map((r) => ({ ...r, seq: seqOf.get(r.id) ?? null }));
  }
  report.missingSeqs = [...seqOf.values()].sort((a, b) => a - b).slice(0, 100);
  report.metrics = await gatewayMetrics(c);
  report.gatewayLogs = {};
  report.brokerLogs = {};
  c.gateways.forEach((g, i) => { report.gatewayLogs[`gateway${i}`] = logCounts(g.proc.logFile); });
  // The gateways log failed replays/recoveries (info) and positions (debug,
  // the harness's default level) with the broker's reason.
  const unknownOp = c.gateways.some((g) => /reason="unknown op"/.test(fs.readFileSync(g.proc.logFile, 'utf8')));
  report.waitingForBrokerRpc = unknownOp;
  const file = path.join(c.outDir, 'report.json');
  fs.writeFileSync(file, JSON.stringify(report, null, 1));
  t.diagnostic(`rows ${rows.length}, stream ${st.ms} ms, writer errors ${st.errors}; faults ${JSON.stringify(st.faults)}`);
  t.diagnostic(`metrics ${JSON.stringify(report.metrics)}`);
  if (problems.length) {
    const head = unknownOp
      ? 'WAITING FOR BROKER RPC (the gateways\' replay/recover/positions requests were answered "unknown op"); '
      : 'DELIVERY BUG (the broker answered the RPC, or never needed to); ';
    assert.fail(`${head}${problems.length} client(s) failed:\n  ${problems.slice(0, 20).join('\n  ')}\n` +
      `missing seqs (recomputed): ${report.missingSeqs.slice(0, 30).join(',')}\nfull evidence: ${file}`);
  }
  return report;
}

function closeClients(clients) {
  for (const cl of clients) cl.socket.disconnect();
}

// One scenario: cluster, clients, stream with faults, verdict, teardown.
async function scenario(t, name, clusterOpts, { faults = () => [], streamOpts = {}, urls, before: beforeStream, after: afterStream } = {}) {
  keySeq.clear();
  seqConflicts.length = 0;
  const c = await Cluster.start({ name: `faults-${name}`, gateways: 2, ...clusterOpts, gatewayArgs: [...GW_ARGS, ...(clusterOpts.gatewayArgs || [])] });
  const ctx = { c };
  let clients = [];
  try {
    // Clients arrive once the gateways are ready, as behind a load balancer
    // with a readiness probe (before that, a gateway knows no leader yet).
    for (let g = 0; g < c.gateways.length; g++) await c.waitGatewayReady(g);
    const u = urls ? await urls(ctx) : c.gateways.map((g) => g.url);
    clients = openClients(c, u);
    ctx.clients = clients;
    await waitConnected(clients);
    if (beforeStream) await beforeStream(ctx);
    const run = crypto.randomBytes(6).toString('hex');
    const st = await stream(c, run, { ...streamOpts, faults: faults(ctx) });
    assert.ok(st.inserted >= TOTAL, `the writers committed only ${st.inserted}/${TOTAL} rows within ${HARD_MS} ms (last error: ${st.lastError})`);
    const rows = await committedRows(c, run);
    assert.ok(rows.length >= TOTAL, `only ${rows.length} rows of this run in the table`);
    await awaitAll(clients, rows);
    ctx.report = await verify(c, clients, rows, st, t);
    if (afterStream) await afterStream(ctx);
  } finally {
    closeClients(clients);
    await sleep(300);     // let the gateways see the clients go before draining
    if (ctx.proxy) await ctx.proxy.close();
    await c.stop();
  }
  return ctx;
}

// ---------------------------------------------------------------------------
describe('faults: nothing lost, nothing twice', () => {
  after(() => { /* clusters are stopped per scenario */ });

  test('the leading broker is SIGKILLed mid-stream; the standby takes over', T, withLogs(async (t) => {
    await scenario(t, 'failover', { brokers: 2, brokerArgs: ['--poll-interval-ms', '250'] }, {
      faults: ({ c }) => [{
        at: 0.35, name: 'SIGKILL leader',
        fn: async () => {
          const leader = c.leaderIndex();
          assert.ok(leader >= 0, 'no broker logged event=leader');
          const other = 1 - leader;
          const from = c.brokers[other].proc.lines.length;
          await c.stopBroker('SIGKILL', leader);
          await c.brokers[other].proc.waitFor(/event=leader/, 15000 * SLOW, from);
        },
      }],
    });
  }));

  test('a single broker is SIGKILLed mid-stream and restarted after a pause', T, withLogs(async (t) => {
    await scenario(t, 'broker-restart', {}, {
      faults: ({ c }) => [{
        at: 0.35, name: 'SIGKILL broker, 1.5 s down, restart',
        fn: async () => {
          await c.stopBroker('SIGKILL');
          await sleep(1500);
          await c.startBroker();
        },
      }],
    });
  }));

  test('a gateway is SIGKILLed mid-stream; its clients recover on the other one', T, withLogs(async (t) => {
    let target;
    const ctx = await scenario(t, 'gateway-kill', {}, {
      urls: async (x) => {
        target = x.c.gateways[0].port;
        x.proxy = await startProxy(() => target);
        return [x.proxy.url, x.c.gateways[1].url];
      },
      faults: ({ c }) => [{
        at: 0.35, name: 'SIGKILL gateway0 (clients go to gateway1)',
        fn: async () => {
          target = c.gateways[1].port;
          await c.stopGateway(0, 'SIGKILL');
        },
      }],
    });
    // The clients of gateway 0 really moved, and each one recovered.
    const moved = ctx.clients.filter((cl) => /@gw0/.test(cl.label));
    for (const cl of moved) {
      assert.ok(cl.connects.length >= 2, `${cl.label}: never reconnected after gateway0 died (${JSON.stringify(cl.disconnects)})`);
      assert.ok(cl.connects.slice(1).every((x) => x.recovered), `${cl.label}: recovered === false after the move: ${JSON.stringify(cl.connects)}`);
    }
  }));

  test('PostgreSQL is restarted (fast shutdown) mid-stream', T, withLogs(async (t) => {
    await scenario(t, 'pg-restart', {}, {
      faults: ({ c }) => [{
        at: 0.35, name: 'PostgreSQL fast shutdown + start',
        fn: async () => {
          const from = c.broker.lines.length;
          await c.restartPostgres('SIGINT');
          await c.broker.waitFor(/event=ready/, 30000 * SLOW, from);
        },
      }],
    });
  }));

  test('forced fan-out drops (tiny high-water marks, a stalled gateway) are repaired', T, withLogs(async (t) => {
    requireBrokerFlag('--pub-hwm');
    const ctx = await scenario(t, 'drops', {
      brokerArgs: ['--pub-hwm', '20'],
      gatewayArgsFor: (i) => (i === 0 ? ['--sub-hwm', '10'] : []),
    }, {
      // A burst: large statements, no pacing.
      streamOpts: { perStmt: 250, durationMs: 1500 },
      faults: ({ c }) => [{
        at: 0.2, name: 'SIGSTOP gateway1 for 1.5 s',
        fn: async () => {
          process.kill(c.gateways[1].proc.pid, 'SIGSTOP');
          await sleep(1500);
          process.kill(c.gateways[1].proc.pid, 'SIGCONT');
        },
      }],
    });
    const m = ctx.report.metrics;
    const gaps = [0, 1].map((g) => m[`gateway${g}`].belfry_gateway_gaps_total || 0);
    const replayed = [0, 1].map((g) => m[`gateway${g}`].belfry_gateway_replayed_total || 0);
    t.diagnostic(`gaps ${gaps}, replayed ${replayed}`);
    assert.ok(gaps[0] + gaps[1] > 0, `no gap was detected, so the drops were not forced (metrics ${JSON.stringify(m)})`);
    assert.ok(replayed[0] + replayed[1] > 0, `gaps but nothing replayed (metrics ${JSON.stringify(m)})`);
  }));

  test('a client back after the retention window gets recovered === false and nothing wrong', T, withLogs(async (t) => {
    requireBrokerFlag('--retention-s');
    const RETENTION_S = 2;
    await scenario(t, 'retention', { brokerArgs: ['--retention-s', String(RETENTION_S)] }, {
      after: async ({ c }) => {
        const token = c.token(5);
        const cl = openClient(c.gateways[1].url, 5, token, { label: 'u5-away@gw1' });
        await waitConnected([cl]);
        const got = (ev) => [...cl.got.keys()].filter((k) => k.startsWith(`${ev}:`)).length;
        const insert = async (tag, k) => {
          const payloads = [];
          for (let i = 0; i < k; i++) payloads.push(JSON.stringify({ run: tag, w: tag, n: 0, i, room: 'user_5' }));
          await c.query(INSERT_SQL, [Array(k).fill('user_5'), payloads]);
        };
        const waitGot = async (tag, k, ms) => {
          const deadline = Date.now() + ms;
          while (Date.now() < deadline && got(tag) < k) await sleep(50);
          return got(tag);
        };
        try {
          await insert('before', 3);
          assert.equal(await waitGot('before', 3, 10000 * SLOW), 3, 'rows before the first disconnect');
          // 1. Within retention: a transport close, rows meanwhile, reconnect 300 ms later.
          cl.socket.io.reconnectionDelay(300);
          cl.socket.io.reconnectionDelayMax(300);
          cl.socket.io.engine.close();
          await insert('within', 4);
          const n1 = cl.connects.length;
          const deadline1 = Date.now() + 10000 * SLOW;
          while (cl.connects.length === n1 && Date.now() < deadline1) await sleep(50);
          assert.equal(cl.connects.length, n1 + 1, 'the client did not reconnect within retention');
          assert.equal(cl.connects[n1].recovered, true, 'a reconnect within the retention window must recover');
          assert.equal(await waitGot('within', 4, 10000 * SLOW), 4, 'rows missed within retention must be recovered');
          // 2. Past retention: away RETENTION_S + 2 s, rows meanwhile.
          const seqBefore = cl.maxSeq;
          const awayMs = (RETENTION_S + 2) * 1000;
          cl.socket.io.reconnectionDelay(awayMs);
          cl.socket.io.reconnectionDelayMax(awayMs);
          cl.socket.io.engine.close();
          await insert('away', 4);
          const n2 = cl.connects.length;
          const deadline2 = Date.now() + awayMs + 10000 * SLOW;
          while (cl.connects.length === n2 && Date.now() < deadline2) await sleep(50);
          assert.equal(cl.connects.length, n2 + 1, 'the client did not reconnect after the retention window');
          assert.equal(cl.connects[n2].recovered, false, 'a reconnect after the retention window must report recovered === false');
          await insert('after', 3);
          assert.equal(await waitGot('after', 3, 10000 * SLOW), 3, 'live rows after a failed recovery must arrive');
          await sleep(500);
          assert.deepEqual(cl.dupKeys, [], 'nothing delivered twice');
          assert.deepEqual(cl.wrongRoom, [], 'nothing from other rooms');
          assert.deepEqual(cl.orderErrors, [], 'per-room order');
          t.diagnostic(`after a failed recovery: ${got('away')}/4 rows of the away period were delivered as events; seq before ${seqBefore}`);
        } finally {
          cl.socket.disconnect();
        }
      },
    });
  }));
});
