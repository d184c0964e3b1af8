'use strict';
// tests/integration/deploy.test.js — the deployment files, checked without a
// Docker engine: deploy/docker-compose.yml through `docker-compose config`
// (Debian docker-compose 1.29, every profile), deploy/Dockerfile against the
// binaries it packages, and then the compose topology rehearsed as plain
// processes in network namespaces.
//
// Design of the rehearsal: one namespace per compose service (postgres,
// broker-a, broker-b, three gateways, lb) plus one for the application and
// its clients, each with one veth whose other end sits on a bridge inside a
// switch namespace; every service has its own 10.231.0.x address, and
// /etc/netns/<ns>/hosts (bind-mounted by `ip netns exec`) gives the compose
// service names (`postgres`, `broker-a`, `gateway` = the three gateways, as
// Docker's DNS does). The services run with the command and BELFRY_*
// environment taken from the parsed `docker-compose config` output (image
// paths mapped to the repository as the Dockerfile copies them), so a wrong
// bind address or endpoint in the compose file fails here. nginx runs
// deploy/nginx.conf minus the `resolve`/`resolver` of nginx >= 1.27.3 (Debian
// has 1.22). Nothing is created in the root namespace except /etc/netns/<ns>/
// folders; every namespace (with its veths) and folder is removed in after()
// and by a synchronous exit hook, and namespaces left by a killed earlier
// run (their creator PID is gone) are removed at start.
// Needs root, iproute2, PostgreSQL 15, nginx, docker-compose (install-deps.sh).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ROOT, BUILD, SLOW, Proc, mintJwt, sleep, tailOf } = require('./lib/harness');

const DEPLOY = path.join(ROOT, 'deploy');
const COMPOSE = path.join(DEPLOY, 'docker-compose.yml');
const OUT = path.join(ROOT, 'tests', 'out', 'deploy');
const PG_BIN = process.env.BELFRY_PG_BIN || '/usr/lib/postgresql/15/bin';
const IS_ROOT = process.getuid && process.getuid() === 0;
const WAIT = 15000 * SLOW;

fs.mkdirSync(OUT, { recursive: true });

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, ...opts });
  return { status: r.status, stdout: r.stdout || '', stderr: (r.stderr || '') + (r.error ? String(r.error) : '') };
}

function must(cmd, args, opts = {}) {
  const r = run(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} -> ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r;
}

// `docker-compose config` with extra args and environment -> {status, stderr, cfg (object)}.
function composeConfig(extraArgs = [], env = {}) {
  const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME || '/root' };
  const r = run('docker-compose', ['-f', COMPOSE, ...extraArgs, 'config'], { env: { ...baseEnv, ...env } });
  let cfg = null;
  if (r.status === 0) {
    const j = must('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'],
      { input: r.stdout });
    cfg = JSON.parse(j.stdout);
  }
  if (cfg) {
    // docker-compose 1.29 renders every service; keep those the active
    // profiles start (no `profiles`, or one of them named by --profile).
    const active = new Set(extraArgs.filter((a, i) => extraArgs[i - 1] === '--profile'));
    cfg.all = cfg.services;
    cfg.services = Object.fromEntries(Object.entries(cfg.services)
      .filter(([, v]) => !v.profiles || v.profiles.some((p) => active.has(p))));
  }
  return { ...r, cfg };
}

// Env names a binary reads, from its --help ("env: BELFRY_X").
function helpEnv(binary) {
  const r = must(path.join(BUILD, binary), ['--help']);
  return new Set([...r.stdout.matchAll(/env: (BELFRY_[A-Z0-9_]+)/g)].map((m) => m[1]));
}

const SECRET = `deploy-test-${crypto.randomBytes(8).toString('hex')}`;

// ---------------------------------------------------------------------------
describe('docker-compose.yml (docker-compose config)', () => {
  before(() => {
    const v = run('docker-compose', ['version']);
    if (v.status !== 0) throw new Error(`docker-compose is missing (bash deploy/install-deps.sh): ${v.stderr}`);
  });

  test('refuses to render without BELFRY_JWT_SECRET, naming it', () => {
    const r = composeConfig();
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /BELFRY_JWT_SECRET/);
  });

  test('the default topology: postgres, schema, two brokers, scalable gateways, lb', () => {
    const { status, stderr, cfg } = composeConfig([], { BELFRY_JWT_SECRET: SECRET });
    assert.equal(status, 0, stderr);
    const s = cfg.services;
    assert.deepEqual(Object.keys(s).sort(), ['broker-a', 'broker-b', 'gateway', 'lb', 'postgres', 'schema']);
    assert.match(s.postgres.image, /^postgres:15/);
    // schema: one shot, after PostgreSQL is healthy; brokers after it completed.
    assert.deepEqual(s.schema.command, ['belfry-broker', '--init-schema']);
    assert.equal(s.schema.depends_on.postgres.condition, 'service_healthy');
    for (const b of ['broker-a', 'broker-b']) {
      assert.deepEqual(s[b].command, ['belfry-broker']);
      assert.equal(s[b].depends_on.schema.condition, 'service_completed_successfully', b);
      assert.equal(s[b].depends_on.postgres.condition, 'service_healthy', b);
      assert.equal(s[b].environment.BELFRY_DB_URL, s['broker-a'].environment.BELFRY_DB_URL, 'both brokers on one database');
      assert.match(s[b].environment.BELFRY_PUB_BIND, /^tcp:\/\/(0\.0\.0\.0|\*):\d+$/, `${b} must bind beyond loopback`);
      assert.match(s[b].environment.BELFRY_RPC_BIND, /^tcp:\/\/(0\.0\.0\.0|\*):\d+$/);
      assert.ok(!s[b].ports, `${b} publishes no host port`);
    }
    // Gateways: scalable (no container name, no fixed host port), connected to every broker.
    const g = s.gateway;
    assert.deepEqual(g.command, ['belfry-gateway']);
    assert.ok(!g.container_name && !g.ports, 'a gateway with a container name or host port cannot be scaled');
    assert.equal(g.deploy.replicas, 3);
    const pubPort = (b) => s[b].environment.BELFRY_PUB_BIND.split(':').pop();
    const rpcPort = (b) => s[b].environment.BELFRY_RPC_BIND.split(':').pop();
    assert.equal(g.environment.BELFRY_BROKER_PUB, `tcp://broker-a:${pubPort('broker-a')},tcp://broker-b:${pubPort('broker-b')}`);
    assert.equal(g.environment.BELFRY_BROKER_RPC, `tcp://broker-a:${rpcPort('broker-a')},tcp://broker-b:${rpcPort('broker-b')}`);
    assert.equal(g.environment.BELFRY_JWT_SECRET, SECRET);
    assert.match(g.environment.BELFRY_LISTEN, /^0\.0\.0\.0:8080$/);
    for (const b of ['broker-a', 'broker-b']) assert.equal(g.depends_on[b].condition, 'service_healthy');
    // The load balancer: the only published port, its config file exists.
    assert.deepEqual(Object.entries(s).filter(([, v]) => v.ports).map(([k]) => k), ['lb']);
    const conf = s.lb.volumes.find((v) => (typeof v === 'string' ? v : v.target).includes('/etc/nginx/nginx.conf'));
    const src = typeof conf === 'string' ? conf.split(':')[0] : conf.source;
    assert.ok(fs.existsSync(src), `lb config ${src} exists`);
    // Health checks everywhere but the one-shot.
    for (const k of ['postgres', 'broker-a', 'broker-b', 'gateway', 'lb']) {
      assert.ok(s[k].healthcheck && Array.isArray(s[k].healthcheck.test) && !s[k].healthcheck.disable, `${k} healthcheck`);
    }
    // Only the load balancer and the gateways face clients; PostgreSQL and brokers do not.
    assert.deepEqual(Object.keys(s.postgres.networks), ['backend']);
    assert.deepEqual(Object.keys(s.lb.networks), ['frontend']);
  });

  test('every BELFRY_* variable is a setting of the binary that receives it', () => {
    const { cfg } = composeConfig([], { BELFRY_JWT_SECRET: SECRET });
    const broker = helpEnv('belfry-broker');
    const gateway = helpEnv('belfry-gateway');
    const known = { 'belfry-broker': broker, 'belfry-gateway': gateway };
    let checked = 0;
    for (const [name, svc] of Object.entries(cfg.services)) {
      if (!svc.command || !known[svc.command[0]]) continue;
      for (const k of Object.keys(svc.environment || {})) {
        if (!k.startsWith('BELFRY_')) continue;
        assert.ok(known[svc.command[0]].has(k), `${name}: ${k} is not a setting of ${svc.command[0]}`);
        checked++;
      }
    }
    assert.ok(checked > 20, `checked ${checked} variables`);
    // The Dockerfile's ENV defaults apply to both programs.
    const df = fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8');
    for (const m of df.matchAll(/(BELFRY_[A-Z0-9_]+)=/g)) {
      assert.ok(broker.has(m[1]) || gateway.has(m[1]), `Dockerfile ENV ${m[1]} is nobody's setting`);
    }
  });

  for (const backend of ['redis', 'nats']) {
    test(`profile ${backend} adds the ${backend} service and switches the fan-out`, () => {
      const plain = composeConfig([], { BELFRY_JWT_SECRET: SECRET });
      assert.ok(!plain.cfg.services[backend], `${backend} only with its profile`);
      assert.deepEqual(plain.cfg.all[backend].profiles, [backend]);
      assert.equal(plain.cfg.services.gateway.environment.BELFRY_FANOUT, 'zmq');
      const { status, stderr, cfg } = composeConfig(['--profile', backend],
        { BELFRY_JWT_SECRET: SECRET, BELFRY_FANOUT: backend });
      assert.equal(status, 0, stderr);
      const svc = cfg.services[backend];
      assert.ok(svc, `${backend} service`);
      assert.ok(svc.healthcheck && !svc.healthcheck.disable, `${backend} healthcheck`);
      assert.deepEqual(Object.keys(svc.networks), ['backend']);
      const urlVar = backend === 'redis' ? 'BELFRY_REDIS_URL' : 'BELFRY_NATS_URL';
      for (const k of ['broker-a', 'broker-b', 'gateway']) {
        const env = cfg.services[k].environment;
        assert.equal(env.BELFRY_FANOUT, backend, k);
        assert.match(env[urlVar], new RegExp(`^${backend}://${backend}:\\d+$`), `${k} ${urlVar}`);
      }
    });
  }
});

// ---------------------------------------------------------------------------
describe('Dockerfile', () => {
  const df = fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages = df.split(/^FROM /m).slice(1);
  const runtime = stages[stages.length - 1];

  test('the runtime stage installs a package for every shared library the binaries need', () => {
    const apt = runtime.match(/apt-get install ([^&]*)/);
    assert.ok(apt, 'runtime stage installs packages');
    const pkgs = new Set(apt[1].split(/\s+/).filter((w) => w && !w.startsWith('-')));
    const ldcache = must('ldconfig', ['-p']).stdout;
    for (const bin of ['belfry-broker', 'belfry-gateway']) {
      const needed = [...must('readelf', ['-d', path.join(BUILD, bin)]).stdout.matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]);
      assert.ok(needed.length > 3, `${bin}: NEEDED entries`);
      for (const so of needed) {
        if (/^(libc|libm|libpthread|libdl|ld-linux.*)\.so/.test(so)) continue;   // libc6, in every image
        if (/^lib(asan|ubsan)\.so/.test(so)) continue;                     // a sanitizer build (make SANITIZE=1)
        const m = ldcache.match(new RegExp(`^\\s*${so.replace(/[.+]/g, '\\$&')} \\(.*\\) => (\\S+)`, 'm'));
        assert.ok(m, `${so} not in the linker cache`);
        const owner = must('dpkg', ['-S', fs.realpathSync(m[1])]).stdout.split(':')[0];
        assert.ok(pkgs.has(owner), `${bin} needs ${so} from Debian package ${owner}, which the runtime stage does not install (it installs ${[...pkgs].join(' ')})`);
      }
    }
  });

  test('the build stage builds both binaries from exactly the sources it copies', { timeout: 300000 }, () => {
    const build = stages.find((st) => /^\S+ AS build\b/.test(st));
    assert.ok(build, 'a stage named build');
    const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'belfry-deploy-ctx-'));
    try {
      for (const m of build.matchAll(/^COPY (?!--from)(.+)$/gm)) {
        const parts = m[1].trim().split(/\s+/);
        const dest = parts[parts.length - 1];
        for (const src of parts.slice(0, -1)) {
          const to = dest.endsWith('/') && dest !== './' ? path.join(ctx, dest) : path.join(ctx, dest === './' ? path.basename(src) : dest);
          fs.cpSync(path.join(ROOT, src), to, { recursive: true, filter: (f) => !/\.(o|d)$/.test(f) });
        }
      }
      const jobs = String(Math.max(1, Math.min(4, os.cpus().length)));
      const r = run('make', ['-C', ctx, `-j${jobs}`, `BUILD=${path.join(ctx, 'out')}`, 'all'], { timeout: 280000 });
      assert.equal(r.status, 0, `make in the build stage's context failed:\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
      for (const b of ['belfry-broker', 'belfry-gateway']) assert.ok(fs.existsSync(path.join(ctx, 'out', b)), b);
    } finally {
      fs.rmSync(ctx, { recursive: true, force: true });
    }
  });

  test('non-root user, health check, the files it copies exist and are in the build context', () => {
    const user = runtime.match(/^USER (\S+)/m);
    assert.ok(user, 'USER');
    assert.ok(!/^(root|0)(:|$)/.test(user[1]), `runs as ${user[1]}`);
    assert.match(runtime, /^HEALTHCHECK .*CMD \["belfry-probe"/m);
    assert.match(runtime, /BELFRY_SCHEMA_DIR=\/usr\/local\/share\/belfry\/sql/);
    const ignore = fs.readFileSync(path.join(DEPLOY, 'Dockerfile.dockerignore'), 'utf8')
      .split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    let n = 0;
    for (const m of df.matchAll(/^COPY (?!--from)(.+)$/gm)) {
      const parts = m[1].trim().split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        const p = src.replace(/\/$/, '');
        assert.ok(fs.existsSync(path.join(ROOT, p)), `COPY source ${p} exists`);
        assert.ok(ignore.some((i) => p === i || p.startsWith(`${i}/`)), `COPY source ${p} is let through by Dockerfile.dockerignore`);
        n++;
      }
    }
    assert.ok(n >= 8, `${n} COPY sources`);
    // The binaries the runtime copies are the ones `make` builds.
    assert.match(df, /COPY --from=build \/out\/belfry-broker \/out\/belfry-gateway /);
  });
});

// ---------------------------------------------------------------------------
// The rehearsal in network namespaces.
const TAG = `bfo${process.pid}`;
const NET = '10.231.0';
const created = { netns: [], etc: [], pids: new Set() };

function ipq(args) { return run('ip', args, { timeout: 10000 }); }

function cleanupSync() {
  for (const pid of created.pids) { try { process.kill(pid, 'SIGKILL'); } catch (_) { /* gone */ } }
  created.pids.clear();
  for (const ns of created.netns.splice(0).reverse()) {
    // Processes still inside (a postmaster's children) are killed by PID.
    const pids = run('ip', ['netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean);
    for (const p of pids) { try { process.kill(Number(p), 'SIGKILL'); } catch (_) { /* gone */ } }
    ipq(['netns', 'del', ns]);
  }
  for (const d of created.etc.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  try { fs.rmdirSync('/etc/netns'); } catch (_) { /* not empty (someone else's), or absent */ }
}
process.on('exit', cleanupSync);

// Namespaces of earlier runs whose creator is gone (a SIGKILLed test process).
function removeStale() {
  const list = ipq(['netns', 'list']).stdout.split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
  for (const ns of list) {
    const m = ns.match(/^bfo(\d+)-/);
    if (!m || Number(m[1]) === process.pid) continue;
    let alive = true;
    try { process.kill(Number(m[1]), 0); } catch (_) { alive = false; }
    if (alive) continue;
    for (const p of run('ip', ['netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(p), 'SIGKILL'); } catch (_) { /* gone */ }
    }
    ipq(['netns', 'del', ns]);
    fs.rmSync(path.join('/etc/netns', ns), { recursive: true, force: true });
  }
  // Their temporary folders (PostgreSQL data, nginx prefix).
  for (const d of fs.readdirSync(os.tmpdir())) {
    const m = d.match(/^belfry-deploy-(?:pg|lb)-bfo(\d+)-/);
    if (!m || Number(m[1]) === process.pid) continue;
    let alive = true;
    try { process.kill(Number(m[1]), 0); } catch (_) { alive = false; }
    if (!alive) fs.rmSync(path.join(os.tmpdir(), d), { recursive: true, force: true });
  }
}

// Spawns `cmd args` inside namespace `ns` (a harness Proc: log file, waitFor).
function nsProc(name, ns, cmd, args, env, extraPids) {
  const p = new Proc(name, 'ip', ['netns', 'exec', ns, cmd, ...args], {
    logFile: path.join(OUT, `${name}.log`), env, extraPids,
  });
  if (p.pid) created.pids.add(p.pid);
  p.exited.then(() => created.pids.delete(p.pid));
  return p;
}

// The client side: one node process in the client namespace driving
// socket.io-client connections and HTTP GETs on command (JSON lines in,
// JSON lines out).
const AGENT = `
const { io } = require('socket.io-client');
const http = require('node:http');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const socks = new Map();
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  if (m.cmd === 'connect') {
    const s = io(m.url, { transports: m.transports, forceNew: true, reconnection: !!m.reconnection,
                          reconnectionDelay: 200, reconnectionDelayMax: 1000, timeout: 10000, auth: { token: m.token } });
    socks.set(m.id, s);
    s.io.on('open', () => s.io.engine.on('upgrade', (t) => out({ id: m.id, type: 'upgrade', transport: t.name })));
    s.on('connect', () => out({ id: m.id, type: 'connect', transport: s.io.engine.transport.name }));
    s.on('connect_error', (e) => out({ id: m.id, type: 'connect_error', message: e.message }));
    s.on('disconnect', (r) => out({ id: m.id, type: 'disconnect', reason: r }));
    s.onAny((event, ...args) => out({ id: m.id, type: 'event', event, args }));
  } else if (m.cmd === 'close') {
    const s = socks.get(m.id); if (s) s.disconnect();
  } else if (m.cmd === 'http') {
    http.get(m.url, { timeout: 5000 }, (res) => {
      let b = ''; res.setEncoding('utf8'); res.on('data', (d) => { b += d; });
      res.on('end', () => out({ id: m.id, type: 'http', status: res.statusCode, body: b }));
    }).on('error', (e) => out({ id: m.id, type: 'http', status: 0, error: e.message }));
  }
}).on('close', () => process.exit(0));
out({ type: 'hello' });
`;

class Agent {
  constructor(ns) {
    this.msgs = [];
    this.waiters = [];
    this.logFile = path.join(OUT, 'client-agent.log');
    const log = fs.openSync(this.logFile, 'w');
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', AGENT], {
      cwd: ROOT, stdio: ['pipe', 'pipe', log],
    });
    created.pids.add(this.child.pid);
    this.child.on('exit', () => created.pids.delete(this.child.pid));
    let buf = '';
    this.child.stdout.on('data', (d) => {
      fs.appendFileSync(this.logFile, d);
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let m;
        try { m = JSON.parse(line); } catch (_) { continue; }
        this.msgs.push(m);
        this.waiters = this.waiters.filter((w) => (w.pred(m) ? (w.done(m), false) : true));
      }
    });
  }

  send(m) { this.child.stdin.write(`${JSON.stringify(m)}\n`); }

  waitFor(pred, ms, what) {
    const hit = this.msgs.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { pred };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`client agent: no ${what} within ${ms} ms; last messages:\n${this.msgs.slice(-15).map((x) => JSON.stringify(x)).join('\n')}`));
      }, ms);
      w.done = (m) => { clearTimeout(t); resolve(m); };
      this.waiters.push(w);
    });
  }

  async connect(id, url, token, transports, reconnection = false) {
    this.send({ cmd: 'connect', id, url, token, transports, reconnection });
    const m = await this.waitFor((x) => x.id === id && (x.type === 'connect' || x.type === 'connect_error'), WAIT, `connect of ${id}`);
    if (m.type !== 'connect') throw new Error(`${id}: connect_error ${m.message}`);
    return m;
  }

  async http(url) {
    const id = `http-${crypto.randomBytes(4).toString('hex')}`;
    this.send({ cmd: 'http', id, url });
    return this.waitFor((x) => x.id === id && x.type === 'http', WAIT, `GET ${url}`);
  }

  events(id, event) { return this.msgs.filter((m) => m.id === id && m.type === 'event' && (!event || m.event === event)); }

  stop() { try { this.child.stdin.end(); } catch (_) { /* closed */ } }
}

describe('the compose topology in network namespaces', { skip: !IS_ROOT && 'needs root (ip netns)' }, () => {
  const hosts = {                        // compose service -> address
    postgres: `${NET}.10`, 'broker-a': `${NET}.11`, 'broker-b': `${NET}.12`,
    'gateway-1': `${NET}.21`, 'gateway-2': `${NET}.22`, 'gateway-3': `${NET}.23`,
    lb: `${NET}.30`, client: `${NET}.40`,
  };
  const ns = (h) => `${TAG}-${h}`;
  let cfg; let pgDir; let pg; const procs = {}; let agent;
  const ids = crypto.randomBytes(4).toString('hex');

  // Service environment from the compose file, with the image's paths mapped
  // to the repository (the Dockerfile copies deploy/sql and deploy/web there).
  function serviceEnv(svc) {
    const env = { PATH: process.env.PATH };
    const df = fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
    for (const m of df.matchAll(/(BELFRY_[A-Z0-9_]+)=(\S+)/g)) env[m[1]] = m[2];
    Object.assign(env, cfg.services[svc].environment);
    for (const [k, v] of Object.entries(env)) {
      if (typeof v === 'string') env[k] = v.replace('/usr/local/share/belfry/', `${DEPLOY}/`);
    }
    return env;
  }

  function startService(svc, host, extraArgs = []) {
    const [bin, ...args] = cfg.services[svc].command;
    return nsProc(host, ns(host), path.join(BUILD, bin), [...args, ...extraArgs], serviceEnv(svc));
  }

  function psql(sql) {
    const url = cfg.services['broker-a'].environment.BELFRY_DB_URL;
    return must('ip', ['netns', 'exec', ns('client'), 'psql', url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql],
      { timeout: 20000 });
  }

  before(async () => {
    for (const [cmd, a] of [['ip', ['-V']], ['nginx', ['-v']], [path.join(PG_BIN, 'postgres'), ['--version']], ['psql', ['--version']]]) {
      const r = run(cmd, a);
      if (r.status !== 0) throw new Error(`${cmd} is missing (bash deploy/install-deps.sh): ${r.stderr}`);
    }
    ({ cfg } = composeConfig([], { BELFRY_JWT_SECRET: SECRET }));
    assert.ok(cfg, 'docker-compose config');
    removeStale();

    // --- the network: a bridge in a switch namespace, one veth per host.
    const sw = ns('sw');
    const add = (n) => {
      const r = ipq(['netns', 'add', n]);
      if (r.status !== 0) throw new Error(`ip netns add ${n} failed (status ${r.status}): ${r.stderr.trim()}`);
      created.netns.push(n);
    };
    add(sw);
    must('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    must('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    const hostsFile = ['127.0.0.1 localhost',
      ...Object.entries(hosts).map(([h, a]) => `${a} ${h}`),
      // Docker's DNS answers the service name with every replica.
      ...['gateway-1', 'gateway-2', 'gateway-3'].map((h) => `${hosts[h]} gateway`)].join('\n') + '\n';
    let k = 0;
    for (const [h, addr] of Object.entries(hosts)) {
      const n = ns(h);
      add(n);
      const etc = path.join('/etc/netns', n);
      created.etc.push(etc);
      fs.mkdirSync(etc, { recursive: true });
      fs.writeFileSync(path.join(etc, 'hosts'), hostsFile);
      const port = `v${k++}`;
      must('ip', ['link', 'add', 'eth0', 'netns', n, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
      must('ip', ['-n', sw, 'link', 'set', port, 'master', 'br0']);
      must('ip', ['-n', sw, 'link', 'set', port, 'up']);
      must('ip', ['-n', n, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
      must('ip', ['-n', n, 'link', 'set', 'eth0', 'up']);
      must('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }

    // --- postgres: the official image's setup (user/password/db belfry, scram over the network).
    pgDir = fs.mkdtempSync(path.join(os.tmpdir(), `belfry-deploy-pg-${TAG}-`));
    created.etc.push(pgDir);
    const pgEnv = cfg.services.postgres.environment;
    fs.writeFileSync(path.join(pgDir, 'pw'), `${pgEnv.POSTGRES_PASSWORD}\n`);
    must('chown', ['-R', 'postgres:postgres', pgDir]);
    const data = path.join(pgDir, 'data');
    must('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'initdb'), '-D', data, '-U', pgEnv.POSTGRES_USER,
      '--pwfile', path.join(pgDir, 'pw'), '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync']);
    fs.appendFileSync(path.join(data, 'pg_hba.conf'), 'host all all all scram-sha-256\n');
    pg = nsProc('postgres', ns('postgres'), 'runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'postgres'), '-D', data,
      '-c', 'listen_addresses=*', '-p', '5432', '-k', pgDir, '-c', 'fsync=off', '-c', 'synchronous_commit=off'],
    { PATH: process.env.PATH }, () => {
      try { return [Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0])]; } catch (_) { return []; }
    });
    await pg.waitFor(/database system is ready to accept connections/, 30000);
    must('psql', ['-X', '-q', '-h', pgDir, '-p', '5432', '-U', pgEnv.POSTGRES_USER, '-d', 'postgres', '-c', `CREATE DATABASE ${pgEnv.POSTGRES_DB}`]);

    // --- schema (one shot), then the brokers, the gateways, the load balancer.
    const schema = startService('schema', 'broker-a');
    const res = await schema.exited;
    assert.equal(res.code, 0, `schema exited ${JSON.stringify(res)}\n${schema.tail()}`);
    procs['broker-a'] = startService('broker-a', 'broker-a');
    await procs['broker-a'].waitFor(/event=ready/, WAIT);
    procs['broker-b'] = startService('broker-b', 'broker-b');
    await procs['broker-b'].waitFor(/event=standby/, WAIT);
    for (const h of ['gateway-1', 'gateway-2', 'gateway-3']) {
      procs[h] = startService('gateway', h);
      await procs[h].waitFor(/event=ready/, WAIT);
    }
    const conf = fs.readFileSync(path.join(DEPLOY, 'nginx.conf'), 'utf8')
      .replace(/^\s*resolver .*;$/m, '')
      .replace(/(server gateway:\d+) resolve;/, '$1;')
      .replace(/access_log off;/, `access_log ${path.join(OUT, 'lb-access.log')};`);
    assert.notEqual(conf, fs.readFileSync(path.join(DEPLOY, 'nginx.conf'), 'utf8'), 'nginx.conf has resolver/resolve');
    const lbDir = fs.mkdtempSync(path.join(os.tmpdir(), `belfry-deploy-lb-${TAG}-`));
    created.etc.push(lbDir);
    fs.writeFileSync(path.join(lbDir, 'nginx.conf'), conf);
    const nginxArgs = ['-p', lbDir, '-c', path.join(lbDir, 'nginx.conf'), '-g', `daemon off; pid ${lbDir}/nginx.pid;`];
    const t = must('ip', ['netns', 'exec', ns('lb'), 'nginx', '-t', ...nginxArgs]);
    assert.match(t.stderr, /test is successful/);
    procs.lb = nsProc('lb', ns('lb'), 'nginx', nginxArgs, { PATH: process.env.PATH },
      () => { try { return [Number(fs.readFileSync(path.join(lbDir, 'nginx.pid'), 'utf8'))]; } catch (_) { return []; } });
    agent = new Agent(ns('client'));
    await agent.waitFor((m) => m.type === 'hello', WAIT, 'agent start');
    // Up when the balancer answers and every gateway is ready (a leading
    // broker answers), as the compose health checks would say.
    for (const url of ['http://lb:8080/lb-healthz', ...['gateway-1', 'gateway-2', 'gateway-3'].map((h) => `http://${h}:8080/readyz`)]) {
      for (let i = 0; ; i++) {
        const r = await agent.http(url);
        if (r.status === 200) break;
        if (i >= 100) throw new Error(`${url} -> ${r.status} ${r.error || ''} after 10 s`);
        await sleep(100);
      }
    }
  });

  after(async () => {
    if (agent) agent.stop();
    for (const p of Object.values(procs).reverse()) if (p.alive) await p.stop('SIGTERM');
    if (pg && pg.alive) await pg.stop('SIGINT', 15000);
    cleanupSync();
    const left = ipq(['netns', 'list']).stdout.split('\n').filter((l) => l.startsWith(`${TAG}-`));
    assert.deepEqual(left, [], 'namespaces left behind');
    for (const h of Object.keys(hosts)) assert.ok(!fs.existsSync(path.join('/etc/netns', ns(h))), `/etc/netns/${ns(h)} left behind`);
  });

  test('the services are isolated: each one on its own address in its own namespace', () => {
    for (const [h, addr] of Object.entries(hosts)) {
      const a = must('ip', ['-n', ns(h), '-4', '-o', 'addr', 'show', 'dev', 'eth0']).stdout;
      assert.match(a, new RegExp(`inet ${addr.replace(/\./g, '\\.')}/24`), h);
    }
    // The client cannot reach a gateway's port on its own loopback: it is elsewhere.
    const r = run('ip', ['netns', 'exec', ns('client'), 'bash', path.join(DEPLOY, 'probe.sh'), 'http', '8080', '/healthz']);
    assert.equal(r.status, 1);
  });

  test('belfry-probe: healthy gateways and brokers, unhealthy otherwise', () => {
    const probe = (h, ...a) => run('ip', ['netns', 'exec', ns(h), 'bash', path.join(DEPLOY, 'probe.sh'), ...a],
      { env: serviceEnv(h.startsWith('gateway') ? 'gateway' : 'broker-a') });
    for (const h of ['gateway-1', 'gateway-2', 'gateway-3']) {
      assert.equal(probe(h).status, 0, `${h} auto (healthz): ${probe(h).stderr}`);
      assert.equal(probe(h, 'ready').status, 0, `${h} readyz`);
      assert.equal(probe(h, 'http', '8080', '/nope').status, 1, `${h} 404 is unhealthy`);
    }
    for (const h of ['broker-a', 'broker-b']) {
      // (auto mode finds the program in /proc: here every namespace shares one
      // PID namespace, unlike containers, so the broker's port is named)
      assert.equal(probe(h, 'http', '9100', '/healthz').status, 0, `${h} /healthz on BELFRY_HTTP`);
      assert.equal(probe(h, 'http', '9100', '/readyz').status, 0, `${h} /readyz (leader or standby, database up)`);
      assert.equal(probe(h, 'tcp', '5556').status, 0, h);
      assert.equal(probe(h, 'tcp', '5599').status, 1, `${h}: nothing on 5599`);
    }
    assert.equal(probe('gateway-1', 'bogus').status, 2);
  });

  test('a row inserted by the application reaches clients via the load balancer (polling, upgrade) and via each gateway', async () => {
    const tok42 = mintJwt('42', { secret: SECRET });
    const tok43 = mintJwt('43', { secret: SECRET });
    // Starts on polling (the handshake, the CONNECT) and upgrades: the
    // 'upgrade' event below only comes from a polling session.
    await agent.connect(`lb-up-${ids}`, 'http://lb:8080', tok42, ['polling', 'websocket']);
    await agent.connect(`lb-poll-${ids}`, 'http://lb:8080', tok42, ['polling']);
    for (const h of ['gateway-1', 'gateway-2', 'gateway-3']) await agent.connect(`${h}-${ids}`, `http://${h}:8080`, tok42, ['websocket']);
    await agent.connect(`u43-${ids}`, 'http://lb:8080', tok43, ['websocket']);
    await agent.waitFor((m) => m.id === `lb-up-${ids}` && m.type === 'upgrade', WAIT, 'upgrade to websocket through nginx');
    // Long-polling through the balancer for longer than a few poll cycles:
    // without stickiness a request lands on another gateway (400, disconnect).
    await sleep(1500);
    psql(`INSERT INTO notifications (room, event, payload) VALUES ('user_42', 'deploy', '{"n": 1, "k": "${ids}"}')`);
    const who = [`lb-up-${ids}`, `lb-poll-${ids}`, `gateway-1-${ids}`, `gateway-2-${ids}`, `gateway-3-${ids}`];
    for (const id of who) {
      await agent.waitFor((m) => m.id === id && m.type === 'event' && m.event === 'deploy' && m.args[0]?.n === 1, WAIT, `row 1 at ${id}`);
    }
    assert.deepEqual(agent.msgs.filter((m) => m.type === 'disconnect' || m.type === 'connect_error'), [], 'no client dropped');
    await sleep(300);
    assert.equal(agent.events(`u43-${ids}`, 'deploy').length, 0, 'user 43 got user 42\'s row');
    // Internal endpoints: on the gateways, not through the balancer.
    assert.equal((await agent.http('http://lb:8080/metrics')).status, 404);
    const m = await agent.http('http://gateway-1:8080/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /^belfry_gateway_broker_ready 1$/m);
  });

  test('the leader broker is killed: the standby takes over and rows keep arriving', async () => {
    const lead = procs['broker-a'].lines.some((l) => /event=leader/.test(l)) ? 'broker-a' : 'broker-b';
    const standby = lead === 'broker-a' ? 'broker-b' : 'broker-a';
    const from = procs[standby].lines.length;
    await procs[lead].stop('SIGKILL');
    await procs[standby].waitFor(/event=ready/, WAIT, from);
    psql(`INSERT INTO notifications (room, event, payload) VALUES ('user_42', 'deploy', '{"n": 2, "k": "${ids}"}')`);
    const who = [`lb-up-${ids}`, `lb-poll-${ids}`, `gateway-1-${ids}`, `gateway-2-${ids}`, `gateway-3-${ids}`];
    for (const id of who) {
      await agent.waitFor((x) => x.id === id && x.type === 'event' && x.event === 'deploy' && x.args[0]?.n === 2, 3 * WAIT, `row 2 at ${id} after failover`);
      assert.deepEqual(agent.events(id, 'deploy').map((x) => x.args[0].n), [1, 2], `${id}: each row once, in order`);
    }
    assert.deepEqual(agent.msgs.filter((x) => x.type === 'disconnect' || x.type === 'connect_error'), [], 'no client dropped');
    // Gateways report ready again with the new leader.
    for (let i = 0; ; i++) {
      const r = await agent.http('http://gateway-2:8080/readyz');
      if (r.status === 200) break;
      assert.ok(i < 100, `gateway-2 /readyz stays ${r.status} after failover`);
      await sleep(100);
    }
  });

  test('a gateway drains on SIGTERM: its clients reconnect through the balancer and get the next row', async () => {
    const tok = mintJwt('42', { secret: SECRET });
    const viaLb = `lb-re-${ids}`;
    await agent.connect(viaLb, 'http://lb:8080', tok, ['websocket'], true);
    // The balancer sends every client of this namespace's address to one
    // gateway: the one holding the most sessions. Drain that one.
    const sessions = {};
    for (const h of ['gateway-1', 'gateway-2', 'gateway-3']) {
      const r = await agent.http(`http://${h}:8080/metrics`);
      sessions[h] = Number(r.body.match(/^belfry_gateway_sessions (\d+)$/m)[1]);
    }
    const target = Object.keys(sessions).sort((a, b) => sessions[b] - sessions[a])[0];
    assert.ok(sessions[target] >= 4, `sessions per gateway ${JSON.stringify(sessions)}`);
    const from = agent.msgs.length;
    const r = await procs[target].stop('SIGTERM', 15000);
    assert.equal(r.forced, false, `${target} did not exit within 15 s of SIGTERM`);
    assert.equal(r.code, 0, `${target} exit ${JSON.stringify(r)}\n${tailOf(procs[target].logFile)}`);
    await agent.waitFor((x) => x.id === viaLb && x.type === 'disconnect', WAIT, 'the drained client is told');
    await agent.waitFor((x) => x.id === viaLb && x.type === 'connect' && agent.msgs.indexOf(x) >= from, 3 * WAIT, 'reconnect through the balancer');
    psql(`INSERT INTO notifications (room, event, payload) VALUES ('user_42', 'deploy', '{"n": 3, "k": "${ids}"}')`);
    await agent.waitFor((x) => x.id === viaLb && x.type === 'event' && x.event === 'deploy' && x.args[0]?.n === 3, 3 * WAIT, 'row 3 through the balancer after the drain');
    for (const h of ['gateway-1', 'gateway-2', 'gateway-3'].filter((g) => g !== target)) {
      await agent.waitFor((x) => x.id === `${h}-${ids}` && x.type === 'event' && x.args[0]?.n === 3, WAIT, `row 3 at ${h}`);
    }
  });
});
