'use strict';
// tests/integration/lib/clients.js — Socket.IO clients for the integration
// tests: the official npm socket.io-client v4 (in process) and the Debian
// python-socketio client (tests/integration/py/client.py, a subprocess that
// prints one JSON line per thing it sees).
//
// Design: a client records every event it receives, in order, as
// {event, args}; waitFor(pred, ms) resolves as soon as a recorded event
// matches and rejects with what was received so far when the bounded wait
// runs out. Tests assert on args[0] only (a later issue appends a recovery
// offset as the last argument). Every client is tracked so closeAll() can end
// them between tests; each socket.io-client gets its own Engine.IO connection
// (forceNew) so two clients really are two connections.

const { io } = require('socket.io-client');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { SLOW } = require('./harness');

const DEFAULT_WAIT = 10000 * SLOW;
const open = new Set();

function describeEvents(events, max = 10) {
  const shown = events.slice(-max).map((e) => JSON.stringify(e)).join('\n  ');
  return `${events.length} event(s) received${events.length ? `; last ${Math.min(max, events.length)}:\n  ${shown}` : ''}`;
}

class Recorder {
  constructor(label) {
    this.label = label;
    this.events = [];
    this.waiters = [];
  }

  push(ev) {
    this.events.push(ev);
    this.waiters = this.waiters.filter((w) => {
      if (w.pred(ev)) { w.resolve(ev); return false; }
      return true;
    });
  }

  // Resolves with the first event (already received or future) matching pred.
  waitFor(pred, timeoutMs = DEFAULT_WAIT, what = 'matching event') {
    const hit = this.events.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { pred };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${this.label}: no ${what} within ${timeoutMs} ms; ${describeEvents(this.events)}`));
      }, timeoutMs);
      w.resolve = (ev) => { clearTimeout(timer); resolve(ev); };
      this.waiters.push(w);
    });
  }

  // Resolves once n events satisfy pred (returns them), bounded in time.
  async waitForCount(pred, n, timeoutMs = DEFAULT_WAIT, what = 'events') {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.events.filter(pred);
      if (got.length >= n) return got;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: only ${got.length}/${n} ${what} within ${timeoutMs} ms; ${describeEvents(this.events)}`);
      await new Promise((resolve) => {
        const w = { pred: () => true, resolve };
        const t = setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); resolve(); }, Math.min(left, 250));
        w.resolve = () => { clearTimeout(t); resolve(); };
        this.waiters.push(w);
      });
    }
  }

  named(event) { return this.events.filter((e) => e.event === event); }
}

// Connects an official socket.io-client. opts: token (auth payload),
// queryToken (token query param), auth (raw auth object), ns ('/' default),
// transports (['websocket']), label. Resolves once connected; rejects with
// the connect_error (err.message from the server) otherwise.
function connect(baseUrl, opts = {}) {
  const ns = opts.ns || '/';
  const label = opts.label || `js-client(${ns})`;
  const query = { ...(opts.query || {}) };
  if (opts.queryToken !== undefined) query.token = opts.queryToken;
  const auth = opts.auth !== undefined ? opts.auth : (opts.token !== undefined ? { token: opts.token } : undefined);
  const socket = io(baseUrl + (ns === '/' ? '' : ns), {
    transports: opts.transports || ['websocket'],
    forceNew: true,
    reconnection: opts.reconnection ?? false,
    timeout: opts.timeout || DEFAULT_WAIT,
    ...(auth !== undefined ? { auth } : {}),
    query,
  });
  const rec = new Recorder(label);
  const client = {
    socket, rec, label,
    events: rec.events,
    waitFor: (...a) => rec.waitFor(...a),
    waitForCount: (...a) => rec.waitForCount(...a),
    named: (e) => rec.named(e),
    close() { socket.disconnect(); open.delete(client); },
  };
  socket.onAny((event, ...args) => rec.push({ event, args }));
  open.add(client);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.close();
      reject(new Error(`${label}: neither connect nor connect_error within ${opts.timeout || DEFAULT_WAIT} ms`));
    }, (opts.timeout || DEFAULT_WAIT) + 1000);
    socket.once('connect', () => { clearTimeout(timer); resolve(client); });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      client.close();
      const e = new Error(`${label}: connect_error: ${err && err.message}`);
      e.connectError = err;
      reject(e);
    });
  });
}

// Expects the connection to be refused: resolves with the connect_error.
async function expectConnectError(baseUrl, opts = {}) {
  try {
    const c = await connect(baseUrl, opts);
    c.close();
  } catch (e) {
    if (e.connectError) return e.connectError;
    throw e;
  }
  throw new Error(`${opts.label || 'client'}: connected although it should have been refused`);
}

// The Debian python-socketio client, run with /usr/bin/python3.
// opts: token, namespaces (['/']), label, script (a file in py/, default
// client.py), extraArgs (more command-line arguments for the script).
// Resolves when every namespace is connected (or rejects with what the
// client printed). With script 'center_client.py', client.call(event, args,
// {ns, timeoutMs}) emits an event with an ack and resolves with the ack's
// arguments (an array).
function connectPy(baseUrl, opts = {}) {
  const namespaces = opts.namespaces || ['/'];
  const label = opts.label || `py-client(${namespaces.join(',')})`;
  const script = opts.script || 'client.py';
  const args = [path.join(__dirname, '..', 'py', script), '--url', baseUrl, '--namespaces', namespaces.join(',')];
  if (opts.token !== undefined) args.push('--token', opts.token);
  if (opts.waitTimeout) args.push('--wait-timeout', String(opts.waitTimeout));
  if (opts.extraArgs) args.push(...opts.extraArgs);
  const child = spawn(process.env.BELFRY_TEST_PYTHON || '/usr/bin/python3', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const rec = new Recorder(label);
  const status = new Recorder(`${label} status`);
  let stderr = '';
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let msg;
      try { msg = JSON.parse(line); } catch (_) { stderr += `unparsable stdout: ${line}\n`; continue; }
      if (msg.type === 'event') rec.push({ event: msg.event, args: msg.args, ns: msg.ns, ...(msg.handler ? { handler: msg.handler } : {}) });
      else status.push(msg);
    }
  });
  child.stderr.on('data', (d) => { stderr += d.toString('utf8'); if (stderr.length > 65536) stderr = stderr.slice(-32768); });
  let callSeq = 0;
  child.stdin.on('error', () => { /* the child exited; status shows it */ });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    status.push({ type: 'exit', code, signal });
    resolve({ code, signal });
  }));
  const client = {
    child, rec, status, label,
    events: rec.events,
    stderr: () => stderr,
    waitFor: (...a) => rec.waitFor(...a),
    waitForCount: (...a) => rec.waitForCount(...a),
    named: (e) => rec.named(e),
    // Emits `event` with args (an array: one Socket.IO argument each) and an
    // ack request; resolves with the ack's arguments. Needs a script that
    // reads commands on stdin (py/center_client.py).
    call(event, callArgs = [], { ns = '/', timeoutMs = DEFAULT_WAIT } = {}) {
      const id = ++callSeq;
      child.stdin.write(`${JSON.stringify({ id, ns, event, args: callArgs })}\n`);
      return status.waitFor((m) => m.type === 'ack' && m.id === id, timeoutMs, `ack of '${event}' (call ${id})`)
        .then((m) => m.args);
    },
    async close() {
      open.delete(client);
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end();
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
  open.add(client);
  return { client, ready: status.waitFor((m) => m.type === 'connected' || m.type === 'connect_failed' || m.type === 'exit', DEFAULT_WAIT + 10000, 'connection result')
    .then((m) => {
      if (m.type === 'connected') return client;
      const e = new Error(`${label}: ${JSON.stringify(m)}; statuses: ${JSON.stringify(status.events)}; stderr: ${stderr.slice(-2000)}`);
      e.statuses = status.events;
      throw e;
    }) };
}

async function closeAll() {
  await Promise.all([...open].map((c) => c.close()));
}

module.exports = { connect, expectConnectError, connectPy, closeAll, Recorder, DEFAULT_WAIT };
