'use strict';
// tests/integration/lib/harness.js — starts and stops the real thing for the
// integration tests: a private PostgreSQL 15, one broker, N gateways.
//
// Design: every process the harness starts is recorded (PID) in one module
// registry; stop() ends exactly those, SIGTERM (SIGINT for PostgreSQL, its
// fast shutdown) then SIGKILL after a timeout, and an 'exit' hook SIGKILLs
// whatever is still alive if the test process dies or is killed by the test
// runner's timeout. PostgreSQL runs as the unprivileged `postgres` user (via
// runuser when we are root) in a fresh temporary folder, on a free loopback
// port, with its socket in that folder; nothing listens beyond 127.0.0.1.
// Each process's stdout+stderr go to tests/out/<cluster>/<proc>.log; readiness
// is a log line (`event=ready`, PostgreSQL's "ready to accept connections")
// awaited with a timeout that fails with the tail of that log. Binaries come
// from $BELFRY_BUILD (default build/) relative to the repository root.

const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const pg = require('pg');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BUILD = path.resolve(ROOT, process.env.BELFRY_BUILD || 'build');
const PG_BIN = process.env.BELFRY_PG_BIN || '/usr/lib/postgresql/15/bin';
// BELFRY_TEST_OUT: another folder for the logs (two runs of one file at once).
const OUT_ROOT = process.env.BELFRY_TEST_OUT ? path.resolve(process.env.BELFRY_TEST_OUT) : path.join(ROOT, 'tests', 'out');
const LOG_LEVEL = process.env.BELFRY_TEST_LOG_LEVEL || 'debug';
// Sanitizer builds are several times slower; scale every readiness wait.
const SLOW = /san/.test(path.basename(BUILD)) ? 3 : 1;
const READY_TIMEOUT = 15000 * SLOW;
const STOP_TIMEOUT = 5000 * SLOW;
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

// ---------------------------------------------------------------------------
// Crash safety: every live PID and temp folder, cleaned synchronously on exit.
const livePids = new Map();   // pid -> name
const liveDirs = new Set();
const activeClusters = new Set();

function killAllSync() {
  for (const [pid] of livePids) {
    try { process.kill(pid, 'SIGKILL'); } catch (_) { /* already gone */ }
  }
  livePids.clear();
  for (const d of liveDirs) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch (_) { /* best effort */ }
  }
  liveDirs.clear();
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => { killAllSync(); process.exit(128 + (os.constants.signals[sig] || 0)); });
}
process.on('uncaughtException', (e) => {
  console.error('uncaught exception in test process:', e);
  killAllSync();
  process.exit(1);
});

// A whole test file may not run longer than this; the exit hook cleans up.
const FILE_WATCHDOG_MS = Number(process.env.BELFRY_TEST_FILE_TIMEOUT_MS || 8 * 60 * 1000);
setTimeout(() => {
  console.error(`watchdog: test file exceeded ${FILE_WATCHDOG_MS} ms, killing everything`);
  for (const c of activeClusters) console.error(c.tails());
  process.exit(1);
}, FILE_WATCHDOG_MS).unref();

// ---------------------------------------------------------------------------
// Small utilities.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves with p's value, or with `onTimeout` after ms; never keeps the
// process alive once p has settled.
function raceTimeout(p, ms, onTimeout = null) {
  let timer;
  const t = new Promise((r) => { timer = setTimeout(() => r(onTimeout), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Distinct free ports (a port just closed by freePort is not reserved, so
// keep the ones handed out in this process apart).
const handedOut = new Set();
async function freshPort() {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (!handedOut.has(p)) { handedOut.add(p); return p; }
  }
  throw new Error('could not find a free loopback port');
}

function tailOf(file, n = 40) {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) { return `(no log at ${file})`; }
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.slice(-n).join('\n');
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

// mintJwt(claims or sub, {secret, expIn (s), alg, header}) -> compact JWT.
// alg 'HS256' signs with node's crypto; alg 'none' leaves the signature empty.
function mintJwt(subOrClaims, opts = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = typeof subOrClaims === 'object' && subOrClaims !== null
    ? { ...subOrClaims }
    : { sub: String(subOrClaims) };
  if (!('iat' in claims)) claims.iat = now;
  if (!('exp' in claims) && opts.expIn !== null) claims.exp = now + (opts.expIn ?? 3600);
  const alg = opts.alg || 'HS256';
  const header = { alg, typ: 'JWT', ...(opts.header || {}) };
  const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  if (alg === 'none') return `${signing}.`;
  const sig = crypto.createHmac('sha256', opts.secret || '').update(signing).digest();
  return `${signing}.${b64url(sig)}`;
}

// ---------------------------------------------------------------------------
// One started process: log file, line watcher, stop by PID.
class Proc {
  constructor(name, cmd, args, { logFile, env, cwd, extraPids } = {}) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.logFile = logFile;
    this.buf = '';
    this.lines = [];
    this.waiters = [];
    this.exitInfo = null;
    this.stopping = false;
    this.extraPids = extraPids || (() => []);
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    this.log = fs.openSync(logFile, 'a');
    fs.writeSync(this.log, `--- ${new Date().toISOString()} start: ${cmd} ${args.join(' ')}\n`);
    this.child = spawn(cmd, args, {
      cwd: cwd || ROOT,
      env: { ...process.env, ...(env || {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid;
    this.startedAt = Date.now() * 1000;
    if (this.pid) livePids.set(this.pid, name);
    const onData = (d) => {
      try { fs.writeSync(this.log, d); } catch (_) { /* log closed */ }
      this.buf += d.toString('utf8');
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        this.lines.push(line);
        this._check();
      }
    };
    this.child.stdout.on('data', onData);
    this.child.stderr.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.exitInfo = { code: null, signal: null, error: e };
        livePids.delete(this.pid);
        this._check();
        resolve(this.exitInfo);
      });
      this.child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        livePids.delete(this.pid);
        try { fs.writeSync(this.log, `--- ${new Date().toISOString()} exit: code=${code} signal=${signal}\n`); } catch (_) { /* ignore */ }
        this._check();
        resolve(this.exitInfo);
      });
    });
  }

  get alive() { return this.exitInfo === null; }

  _check() {
    this.waiters = this.waiters.filter((w) => {
      for (let k = w.from; k < this.lines.length; k++) {
        if (w.re.test(this.lines[k])) { w.done(null, this.lines[k]); return false; }
      }
      w.from = this.lines.length;
      if (this.exitInfo) {
        w.done(new Error(`${this.name} exited (${JSON.stringify(this.exitInfo)}) before logging ${w.re}\n` +
          `--- last lines of ${this.logFile}:\n${tailOf(this.logFile)}`));
        return false;
      }
      return true;
    });
  }

  // Resolves with the first line (from line index `from`, default: all seen
  // so far) matching re; rejects with the log tail on timeout or exit.
  waitFor(re, timeoutMs = READY_TIMEOUT, from = 0) {
    return new Promise((resolve, reject) => {
      const w = { re, from };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timeout (${timeoutMs} ms) waiting for ${this.name} to log ${re}\n` +
          `--- last lines of ${this.logFile}:\n${tailOf(this.logFile)}`));
      }, timeoutMs);
      w.done = (err, line) => { clearTimeout(timer); if (err) reject(err); else resolve(line); };
      this.waiters.push(w);
      this._check();
    });
  }

  // Sends `signal` (then SIGKILL after timeoutMs) to this process and to any
  // extra PIDs it names (PostgreSQL's postmaster behind runuser).
  async stop(signal = 'SIGTERM', timeoutMs = STOP_TIMEOUT) {
    if (!this.alive) return { ...this.exitInfo, forced: false };
    this.stopping = true;
    const targets = [...this.extraPids(), this.pid];
    for (const pid of targets) {
      try { process.kill(pid, signal); } catch (_) { /* gone */ }
    }
    let forced = false;
    if ((await raceTimeout(this.exited, timeoutMs, 'timeout')) === 'timeout') {
      forced = true;
      for (const pid of targets) {
        try { process.kill(pid, 'SIGKILL'); } catch (_) { /* gone */ }
      }
      await this.exited;
    }
    try { fs.closeSync(this.log); } catch (_) { /* already closed */ }
    return { ...this.exitInfo, forced };
  }

  tail(n = 40) { return tailOf(this.logFile, n); }
}

function runSync(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, ...opts });
  if (r.error || r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (status ${r.status}, ${r.error || ''}):\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

function asPostgres(cmd, args) {
  return IS_ROOT ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

// ---------------------------------------------------------------------------
// PostgreSQL in a temporary folder.
class Postgres {
  constructor(outDir) {
    this.outDir = outDir;
    this.proc = null;
  }

  async start() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'belfry-pg-'));
    liveDirs.add(this.dir);
    this.data = path.join(this.dir, 'data');
    if (IS_ROOT) runSync('chown', ['postgres:postgres', this.dir]);
    this.port = await freshPort();
    const [c, a] = asPostgres(path.join(PG_BIN, 'initdb'),
      ['-D', this.data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--locale=C']);
    const r = runSync(c, a);
    fs.writeFileSync(path.join(this.outDir, 'initdb.log'), r.stdout + r.stderr);
    await this._spawn();
    this.url = `postgresql://postgres@127.0.0.1:${this.port}/belfry`;
    const admin = new pg.Client({ host: '127.0.0.1', port: this.port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    try { await admin.query('CREATE DATABASE belfry'); } finally { await admin.end(); }
  }

  _postmasterPid() {
    try {
      const pid = Number(fs.readFileSync(path.join(this.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? [pid] : [];
    } catch (_) { return []; }
  }

  async _spawn() {
    const [c, a] = asPostgres(path.join(PG_BIN, 'postgres'), [
      '-D', this.data, '-p', String(this.port),
      '-c', 'listen_addresses=127.0.0.1', '-k', this.dir,
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      '-c', 'max_connections=50', '-c', 'shared_buffers=32MB',
    ]);
    this.proc = new Proc('postgres', c, a, {
      logFile: path.join(this.outDir, 'postgres.log'),
      extraPids: () => this._postmasterPid(),
    });
    await this.proc.waitFor(/database system is ready to accept connections/, 30000);
    for (const pid of this._postmasterPid()) livePids.set(pid, 'postmaster');
  }

  // Fast shutdown (SIGINT) by default; 'SIGKILL' for a crash, 'SIGTERM' smart.
  async stop(signal = 'SIGINT') {
    if (!this.proc) return null;
    const pm = this._postmasterPid();
    const r = await this.proc.stop(signal, 15000);
    // If the postmaster survived runuser (it should not), end it by its PID.
    for (const pid of pm) {
      try { process.kill(pid, 0); process.kill(pid, 'SIGKILL'); } catch (_) { /* gone */ }
      livePids.delete(pid);
    }
    if (signal === 'SIGKILL') {
      // Children of a killed postmaster exit on their own; wait for the lock file to be reusable.
      await sleep(500);
    }
    return r;
  }

  async restart(signal = 'SIGINT') {
    await this.stop(signal);
    await this._spawn();
  }

  async destroy() {
    await this.stop();
    if (this.dir) {
      fs.rmSync(this.dir, { recursive: true, force: true });
      liveDirs.delete(this.dir);
    }
  }
}

// GET path on a loopback port; resolves with the body text (status 200 only).
function httpGetText(port, urlPath, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(body)
        : reject(new Error(`GET ${urlPath} on port ${port} -> ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timeout`)));
    req.on('error', reject);
  });
}

function healthz(port, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('healthz timeout')));
    req.on('error', reject);
  });
}

// GET /readyz -> status code (200 once the gateway has a leading broker).
function readyz(port, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/readyz', timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('readyz timeout')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------
// The demo page's folder: deploy/web/* plus the official client bundle
// (node_modules/socket.io-client/dist/socket.io.min.js) as socket.io.min.js,
// copied into `dest` (created if missing). Returns dest.
const WEB_SRC = path.join(ROOT, 'deploy', 'web');
const CLIENT_BUNDLE = path.join(ROOT, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');
function makeWebDir(dest) {
  fs.mkdirSync(dest, { recursive: true });
  for (const f of fs.readdirSync(WEB_SRC)) {
    const src = path.join(WEB_SRC, f);
    if (fs.statSync(src).isFile()) fs.copyFileSync(src, path.join(dest, f));
  }
  if (!fs.existsSync(CLIENT_BUNDLE)) throw new Error(`${CLIENT_BUNDLE} is missing (npm ci first)`);
  fs.copyFileSync(CLIENT_BUNDLE, path.join(dest, 'socket.io.min.js'));
  return dest;
}

// ---------------------------------------------------------------------------
// The cluster: PostgreSQL + broker + gateways.
class Cluster {
  // opts: name (log folder), gateways (count, default 2), jwtSecret,
  // brokerArgs/gatewayArgs (extra flags), env (extra environment),
  // web (true: every gateway serves the demo page, see makeWebDir, with
  // --static-dir from a temporary folder; cluster.webDir names it),
  // brokers (count, default 1: broker 0 starts first and leads, the others
  // wait as standbys; every gateway is given every broker's endpoints),
  // brokerArgsFor(i) / gatewayArgsFor(i) (extra flags for one process).
  static async start(opts = {}) {
    const c = new Cluster(opts);
    activeClusters.add(c);
    try {
      await c._start();
    } catch (e) {
      console.error(`cluster ${c.name} failed to start: ${e.message}`);
      console.error(c.tails());
      await c.stop({ quiet: true }).catch(() => {});
      throw e;
    }
    return c;
  }

  constructor(opts) {
    this.name = opts.name || 'cluster';
    this.nGateways = opts.gateways ?? 2;
    this.jwtSecret = opts.jwtSecret || `test-secret-${crypto.randomBytes(8).toString('hex')}`;
    this.brokerArgs = opts.brokerArgs || [];
    this.gatewayArgs = opts.gatewayArgs || [];
    this.env = opts.env || {};
    this.web = !!opts.web;
    this.webDir = null;
    this.outDir = path.join(OUT_ROOT, this.name);
    fs.rmSync(this.outDir, { recursive: true, force: true });
    fs.mkdirSync(this.outDir, { recursive: true });
    this.pg = new Postgres(this.outDir);
    this.broker = null;       // brokers[0], kept under its old name
    this.nBrokers = opts.brokers ?? 1;
    this.brokers = [];        // {proc, pubUrl, rpcUrl, httpPort, httpUrl} per broker index
    this.brokerArgsFor = opts.brokerArgsFor || (() => []);
    this.gatewayArgsFor = opts.gatewayArgsFor || (() => []);
    this.gateways = [];
    this.pools = [];
    this.procProblems = [];
  }

  async _start() {
    for (const b of ['belfry-broker', 'belfry-gateway']) {
      if (!fs.existsSync(path.join(BUILD, b))) throw new Error(`${path.join(BUILD, b)} does not exist (build first, or set BELFRY_BUILD)`);
    }
    if (this.web) {
      this.webDir = fs.mkdtempSync(path.join(os.tmpdir(), 'belfry-web-'));
      liveDirs.add(this.webDir);
      makeWebDir(this.webDir);
      this.gatewayArgs = [...this.gatewayArgs, '--static-dir', this.webDir];
    }
    await this.pg.start();
    this.dbUrl = this.pg.url;
    this.pubPort = await freshPort();
    this.rpcPort = await freshPort();
    this.pubUrl = `tcp://127.0.0.1:${this.pubPort}`;
    this.rpcUrl = `tcp://127.0.0.1:${this.rpcPort}`;
    this.brokers[0] = { proc: null, pubUrl: this.pubUrl, rpcUrl: this.rpcUrl };
    for (let i = 1; i < this.nBrokers; i++) {
      this.brokers[i] = {
        proc: null,
        pubUrl: `tcp://127.0.0.1:${await freshPort()}`,
        rpcUrl: `tcp://127.0.0.1:${await freshPort()}`,
      };
    }
    // Every broker serves /metrics, /healthz, /readyz on its own port (the
    // default, 127.0.0.1:9100, would collide between brokers and runs).
    for (const b of this.brokers) {
      b.httpPort = await freshPort();
      b.httpUrl = `http://127.0.0.1:${b.httpPort}`;
    }
    const init = new Proc('init-schema', path.join(BUILD, 'belfry-broker'),
      ['--db', this.dbUrl, '--init-schema', '--log-level', LOG_LEVEL],
      { logFile: path.join(this.outDir, 'init-schema.log'), env: this.env });
    const res = await raceTimeout(init.exited, 30000 * SLOW, null);
    if (!res) { await init.stop('SIGKILL'); throw new Error(`belfry-broker --init-schema hung\n${init.tail()}`); }
    if (res.code !== 0) throw new Error(`belfry-broker --init-schema exited ${JSON.stringify(res)}\n${init.tail()}`);
    await this.startBroker();
    for (let i = 1; i < this.nBrokers; i++) await this.startBroker(i);
    for (let i = 0; i < this.nGateways; i++) await this.startGateway(i);
    this.db = new pg.Pool({ connectionString: this.dbUrl, max: 4 });
    this.db.on('error', () => { /* restarts of PostgreSQL drop idle clients */ });
  }

  // Starts broker i (default 0) on its endpoints (the same ones after a
  // restart). Resolves once it is ready (leading), or, when another broker
  // already leads, once it logged event=standby. Broker 0 keeps the old
  // names (cluster.broker, broker.log); broker i > 0 is broker<i>.
  async startBroker(i = 0) {
    const b = this.brokers[i];
    if (!b) throw new Error(`no broker ${i} (cluster started with brokers: ${this.nBrokers})`);
    if (b.proc && b.proc.alive) throw new Error(`broker ${i} already running`);
    const name = i === 0 ? 'broker' : `broker${i}`;
    const proc = new Proc(name, path.join(BUILD, 'belfry-broker'), [
      '--db', this.dbUrl, '--pub', b.pubUrl, '--rpc', b.rpcUrl, '--http', `127.0.0.1:${b.httpPort}`,
      '--log-level', LOG_LEVEL, ...this.brokerArgs, ...this.brokerArgsFor(i),
    ], { logFile: path.join(this.outDir, `${name}.log`), env: this.env });
    b.proc = proc;
    if (i === 0) this.broker = proc;
    this._watch(proc);
    const otherLeads = this.brokers.some((o, j) => j !== i && o.proc && o.proc.alive);
    await proc.waitFor(otherLeads ? /event=(ready|standby)/ : /event=ready/, READY_TIMEOUT);
    return proc;
  }

  // Stops broker i (SIGTERM, or SIGKILL to simulate a crash).
  async stopBroker(signal = 'SIGTERM', i = 0) {
    const proc = this.brokers[i].proc;
    const r = await proc.stop(signal);
    if (signal === 'SIGTERM') this._judgeExit(proc, r);
    return r;
  }

  async restartBroker(signal = 'SIGTERM', i = 0) {
    await this.stopBroker(signal, i);
    return this.startBroker(i);
  }

  // The index of the live broker that most recently logged event=leader
  // (the leader, as far as the logs tell), or -1.
  leaderIndex() {
    let best = -1;
    let bestAt = -1;
    this.brokers.forEach((b, i) => {
      if (!b.proc || !b.proc.alive) return;
      for (let k = b.proc.lines.length - 1; k >= 0; k--) {
        if (/event=leader/.test(b.proc.lines[k])) {
          const at = b.proc.startedAt + k;   // later processes win ties by start time
          if (at > bestAt) { best = i; bestAt = at; }
          break;
        }
      }
    });
    return best;
  }

  // Comma-separated endpoint lists of every broker, for --broker-pub/-rpc.
  brokerPubList() { return this.brokers.map((b) => b.pubUrl).join(','); }
  brokerRpcList() { return this.brokers.map((b) => b.rpcUrl).join(','); }

  async restartPostgres(signal = 'SIGINT') {
    await this.pg.restart(signal);
  }

  async startGateway(i) {
    const port = this.gateways[i]?.port || await freshPort();
    if (this.gateways[i] && this.gateways[i].proc.alive) throw new Error(`gateway${i} already running`);
    const proc = new Proc(`gateway${i}`, path.join(BUILD, 'belfry-gateway'), [
      '--listen', `127.0.0.1:${port}`, '--broker-pub', this.brokerPubList(), '--broker-rpc', this.brokerRpcList(),
      '--jwt-secret', this.jwtSecret, '--log-level', LOG_LEVEL, ...this.gatewayArgs, ...this.gatewayArgsFor(i),
    ], { logFile: path.join(this.outDir, `gateway${i}.log`), env: this.env });
    this._watch(proc);
    this.gateways[i] = { proc, port, url: `http://127.0.0.1:${port}` };
    await proc.waitFor(/event=ready/, READY_TIMEOUT);
    const code = await healthz(port).catch((e) => e.message);
    if (code !== 200) throw new Error(`gateway${i} GET /healthz -> ${code}\n${proc.tail()}`);
    return this.gateways[i];
  }

  // Log positions of the gateways now, for waitLeader(since).
  logMark() { return this.gateways.map((g) => (g ? g.proc.lines.length : 0)); }

  // Resolves once every running gateway has logged event=broker_epoch (a
  // leading broker answered its ping, so RPC requests such as the unread
  // snapshot on connect are served) after the log positions `since` (from
  // logMark(); default: since it started). Rejects with the log on timeout.
  async waitLeader(since = [], timeoutMs = READY_TIMEOUT) {
    await Promise.all(this.gateways.map((g, i) => (g && g.proc.alive
      ? g.proc.waitFor(/event=broker_epoch/, timeoutMs, since[i] || 0) : null)));
  }

  // Stops gateway i (SIGTERM drains; SIGKILL simulates a crash). A later
  // startGateway(i) restarts it on the same port.
  async stopGateway(i, signal = 'SIGTERM') {
    const proc = this.gateways[i].proc;
    const r = await proc.stop(signal);
    if (signal === 'SIGTERM') this._judgeExit(proc, r);
    return r;
  }

  // Resolves once gateway i answers GET /readyz with 200 (a leading broker
  // answered its ping and the fan-out is connected), as a load balancer's
  // readiness probe would wait; rejects after timeoutMs.
  async waitGatewayReady(i, timeoutMs = READY_TIMEOUT) {
    const deadline = Date.now() + timeoutMs;
    let last = null;
    while (Date.now() < deadline) {
      try { await httpGetText(this.gateways[i].port, '/readyz'); return; } catch (e) { last = e.message; }
      await sleep(50);
    }
    throw new Error(`gateway${i} not ready (/readyz) within ${timeoutMs} ms: ${last}\n${this.gateways[i].proc.tail()}`);
  }

  // GET /metrics of gateway i, parsed: { 'name' or 'name{labels}': number }.
  async metrics(i) {
    const text = await httpGetText(this.gateways[i].port, '/metrics');
    const out = {};
    for (const line of text.split('\n')) {
      const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/);
      if (m) out[m[1]] = Number(m[2]);
    }
    return out;
  }

  // A process that dies while nobody asked it to is a failure of the run.
  _watch(proc) {
    proc.exited.then((info) => {
      if (!proc.stopping) this.procProblems.push(`${proc.name} (pid ${proc.pid}) died unexpectedly: ${JSON.stringify(info)}`);
    });
  }

  _judgeExit(proc, r) {
    if (r.forced) console.error(`warning: ${proc.name} did not exit within ${STOP_TIMEOUT} ms of SIGTERM; killed`);
    else if (r.code !== 0 && r.code !== null) this.procProblems.push(`${proc.name} exited with code ${r.code} on SIGTERM`);
    else if (r.signal && r.signal !== 'SIGTERM') this.procProblems.push(`${proc.name} died of ${r.signal} on SIGTERM`);
    const text = fs.existsSync(proc.logFile) ? fs.readFileSync(proc.logFile, 'utf8') : '';
    const m = text.match(/^.*(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:).*$/m);
    if (m) this.procProblems.push(`${proc.name}: sanitizer report in ${proc.logFile}: ${m[0]}`);
  }

  token(sub, opts = {}) { return mintJwt(sub, { secret: this.jwtSecret, ...opts }); }

  query(sql, params) { return this.db.query(sql, params); }

  // A dedicated client (for interleaved transactions); caller must end() it.
  async client() {
    const c = new pg.Client({ connectionString: this.dbUrl });
    c.on('error', () => {});
    await c.connect();
    return c;
  }

  // insert({room, namespace, event, payload}) -> id
  async insert(row) {
    const cols = ['room'];
    const vals = [row.room];
    if (row.namespace !== undefined) { cols.push('namespace'); vals.push(row.namespace); }
    if (row.event !== undefined) { cols.push('event'); vals.push(row.event); }
    if (row.payload !== undefined) { cols.push('payload'); vals.push(JSON.stringify(row.payload)); }
    const ph = vals.map((_, i) => `$${i + 1}`).join(', ');
    const r = await this.db.query(`INSERT INTO notifications (${cols.join(', ')}) VALUES (${ph}) RETURNING id`, vals);
    return Number(r.rows[0].id);
  }

  tails(n = 40) {
    const procs = [this.pg.proc, ...this.brokers.map((b) => b && b.proc), ...this.gateways.map((g) => g && g.proc)]
      .filter(Boolean);
    return procs.map((p) => `--- ${p.name}: last ${n} lines of ${p.logFile}\n${p.tail(n)}`).join('\n');
  }

  // Stops everything this cluster started; throws if a process misbehaved
  // (died unexpectedly, non-zero exit on SIGTERM, sanitizer report).
  async stop({ quiet = false } = {}) {
    for (const g of this.gateways) {
      if (g && g.proc.alive) this._judgeExit(g.proc, await g.proc.stop('SIGTERM'));
    }
    for (const b of this.brokers) {
      if (b && b.proc && b.proc.alive) this._judgeExit(b.proc, await b.proc.stop('SIGTERM'));
    }
    if (this.db) await this.db.end().catch(() => {});
    await this.pg.destroy();
    if (this.webDir) {
      fs.rmSync(this.webDir, { recursive: true, force: true });
      liveDirs.delete(this.webDir);
    }
    activeClusters.delete(this);
    if (this.procProblems.length && !quiet) {
      const msg = this.procProblems.join('\n');
      this.procProblems = [];
      throw new Error(`process problems in cluster ${this.name}:\n${msg}\n${this.tails(20)}`);
    }
  }
}

// Wraps a test body: on failure, prints the tail of every active cluster's logs.
function withLogs(fn) {
  return async (t) => {
    try {
      return await fn(t);
    } catch (e) {
      for (const c of activeClusters) console.error(`\n==== logs of cluster ${c.name} (full logs in ${c.outDir})\n${c.tails()}`);
      throw e;
    }
  };
}

module.exports = {
  ROOT, BUILD, SLOW, Cluster, Postgres, Proc, mintJwt, freePort: freshPort, sleep, withLogs, tailOf, healthz,
  makeWebDir, httpGetText, raceTimeout, readyz,
};
