'use strict';
// tests/bench/peer/server.js — the baseline of `make bench`: the Node
// socket.io v4 server its users would write instead of Belfry.
//
// One process. A client authenticates with an HS256 JWT in the CONNECT auth
// payload ({"token": ...}), verified with node's crypto HMAC (alg must be
// HS256, signature compared in constant time, exp checked); it joins
// user_<sub> and all. The server LISTENs on the same PostgreSQL and, on each
// notification, reads the new rows (WHERE id > last_id ORDER BY id, in pages)
// and emits each one to its room in its namespace: io.of(ns).to(room).emit().
//
// Doorbell: it uses Belfry's own schema and trigger, so that the INSERTs cost
// the same statement and trigger for both systems. That trigger only NOTIFYs
// while belfry_bell.armed is true, and Belfry's broker disarms it while busy;
// this server simply sets armed = true at start (the broker is not running
// during the peer's turn) and LISTENs on belfry_bell.channel. So every
// writing transaction NOTIFYs, as in the usual hand-written trigger.
//
// Known weakness, kept on purpose because it is how such servers are built:
// `id > last_id` skips a row whose transaction took an id earlier but
// committed later than a row already read (concurrent writers). The load
// generator counts such rows as lost.
//
// Usage: node server.js --port P --db URL --secret S [--recovery]
// Prints `event=ready port=P` when it accepts connections.

const http = require('node:http');
const crypto = require('node:crypto');
const { Server } = require('socket.io');
const pg = require('pg');

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  return process.argv[i + 1];
}
const PORT = Number(arg('port', '3000'));
const DB = arg('db', process.env.BELFRY_DB_URL || '');
const SECRET = arg('secret', process.env.BELFRY_JWT_SECRET || '');
const RECOVERY = process.argv.includes('--recovery');
const PAGE = 5000;

if (!DB || !SECRET) {
  console.error('usage: node server.js --port P --db URL --secret S [--recovery]');
  process.exit(2);
}

function b64urlDecode(s) {
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

// Returns the sub of a valid HS256 token, or null.
function verifyJwt(token) {
  if (typeof token !== 'string' || token.length > 8192) return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let header, claims;
  try {
    header = JSON.parse(b64urlDecode(parts[0]).toString('utf8'));
    claims = JSON.parse(b64urlDecode(parts[1]).toString('utf8'));
  } catch (_) { return null; }
  if (!header || header.alg !== 'HS256' || !claims) return null;
  const want = crypto.createHmac('sha256', SECRET).update(`${parts[0]}.${parts[1]}`).digest();
  const got = b64urlDecode(parts[2]);
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
  const now = Date.now() / 1000;
  if (typeof claims.exp === 'number' && now >= claims.exp) return null;
  if (typeof claims.nbf === 'number' && now < claims.nbf) return null;
  if (typeof claims.sub !== 'string' && typeof claims.sub !== 'number') return null;
  return String(claims.sub);
}

const httpServer = http.createServer();
const io = new Server(httpServer, {
  cors: { origin: '*' },
  ...(RECOVERY ? { connectionStateRecovery: { maxDisconnectionDuration: 2 * 60 * 1000 } } : {}),
});

function authMiddleware(socket, next) {
  const sub = verifyJwt(socket.handshake.auth && socket.handshake.auth.token);
  if (sub === null) return next(new Error('unauthorized'));
  socket.data.sub = sub;
  next();
}
function onConnection(socket) {
  socket.join(`user_${socket.data.sub}`);
  socket.join('all');
}
// Any namespace a row names gets the same auth and rooms.
const namespaces = new Set();
function nsp(name) {
  const n = io.of(name);
  if (!namespaces.has(name)) {
    namespaces.add(name);
    n.use(authMiddleware);
    n.on('connection', onConnection);
  }
  return n;
}
nsp('/');

const db = new pg.Client({ connectionString: DB });
let lastId = 0;
let reading = false;
let again = false;

async function readNew() {
  if (reading) { again = true; return; }
  reading = true;
  try {
    do {
      again = false;
      for (;;) {
        const r = await db.query(
          'SELECT id, namespace, room, event, payload FROM notifications WHERE id > $1 ORDER BY id LIMIT $2',
          [lastId, PAGE]);
        for (const row of r.rows) {
          nsp(row.namespace).to(row.room).emit(row.event, row.payload);
          lastId = Number(row.id);
        }
        if (r.rows.length < PAGE) break;
      }
    } while (again);
  } catch (e) {
    console.error(`event=read_failed reason="${e.message}"`);
  } finally {
    reading = false;
  }
}

async function main() {
  await db.connect();
  const bell = await db.query('UPDATE belfry_bell SET armed = true RETURNING channel');
  const channel = bell.rows.length ? bell.rows[0].channel : 'belfry';
  const m = await db.query('SELECT coalesce(max(id), 0) AS id FROM notifications');
  lastId = Number(m.rows[0].id);
  db.on('notification', () => { readNew(); });
  db.on('error', (e) => { console.error(`event=db_error reason="${e.message}"`); process.exit(1); });
  await db.query(`LISTEN "${channel.replace(/"/g, '""')}"`);
  // A safety net, as such servers usually have: read once a second anyway.
  setInterval(readNew, 1000).unref();
  httpServer.listen(PORT, '127.0.0.1', () => {
    console.log(`event=ready port=${PORT} channel=${channel} last_id=${lastId} recovery=${RECOVERY}`);
  });
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    io.close();
    db.end().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
main().catch((e) => { console.error(`event=start_failed reason="${e.message}"`); process.exit(1); });
