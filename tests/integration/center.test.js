'use strict';
// The notification center (issue 5) with real PostgreSQL, one broker, two
// gateways, the official socket.io-client (JS) and the Debian python-socketio
// client (tests/integration/py/center_client.py):
//   - the `unread` event on connect ({count, items}: newest first, at most 20,
//     each {id, event, payload, created_at}) for the personal room of the
//     socket's namespace, and the same object as the ack of `unread`;
//   - `mark_read` (an id, a list, {"ids": [...]}) and `mark_all_read` acked
//     with {"unread": N}, and the event `read` {"ids", "unread"} reaching every
//     connection of the user on both gateways (and nobody else);
//   - a forged mark_read of another user's row marks nothing (SQL read_at
//     stays NULL), malformed mark_read arguments get an error ack;
//   - other events run in the SQL function (default belfry_handle_event from
//     deploy/sql; its result is the ack, an SQL error becomes {"error"}), and
//     a custom function given with --event-function that raises;
//   - `publish` allowed by the token's "publish" claim: an INSERT delivered to
//     the room's members, refused otherwise (and nothing inserted);
//   - `join` / `leave` allowed by the "rooms" claim, refusals acked as errors;
//   - an unread snapshot of a user with 10,000 unread rows (20 items, exact
//     count) and a connect storm of many users (batched reads keep each
//     user's snapshot its own).
// Each test uses its own users, so tests do not see each other's rows.

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Cluster, withLogs, sleep, SLOW } = require('./lib/harness');
const { connect, connectPy, closeAll, DEFAULT_WAIT } = require('./lib/clients');

const T = { timeout: 120000 * SLOW };
const WAIT = DEFAULT_WAIT;           // an ack or an event must arrive within this
const QUIET = 600 * SLOW;            // how long "nothing else arrives" is watched
const LIMIT = 20;                    // items in an unread snapshot
const nonce = () => crypto.randomBytes(5).toString('hex');

let userSeq = 0;
const newUser = (tag) => `${tag}${process.pid % 1000}x${++userSeq}`;

// socket.io-client: emit with an ack, bounded in time.
const ack = (cl, event, ...args) => cl.socket.timeout(WAIT).emitWithAck(event, ...args);
// python-socketio: the ack's first argument.
const pyAck = async (p, event, args = [], opts = {}) => (await p.call(event, args, opts))[0];
const pyStart = (url, token, label, extra = {}) => connectPy(url, {
  token, label, script: 'center_client.py', namespaces: extra.namespaces || ['/'], ...extra,
}).ready;

describe('notification center', () => {
  let c;
  before(async () => {
    c = await Cluster.start({ name: 'center', gateways: 2 });
    // The snapshot on connect needs a gateway that knows the leading broker.
    await c.waitLeader();
  });
  afterEach(() => closeAll());
  after(async () => { await closeAll(); if (c) await c.stop(); });

  // n rows for room user_<user> in namespace ns, one statement; returns their
  // ids ascending.
  async function addRows(user, n, { ns = '/', event = 'notification', tag = nonce() } = {}) {
    const r = await c.query(
      `INSERT INTO notifications (namespace, room, event, payload)
       SELECT $1, $2, $3, jsonb_build_object('i', g, 'tag', $4::text) FROM generate_series(1, $5::int) g
       RETURNING id`, [ns, `user_${user}`, event, tag, n]);
    return r.rows.map((x) => Number(x.id)).sort((a, b) => a - b);
  }

  // The snapshot the contract promises, computed in SQL.
  async function expectedSnapshot(user, ns = '/') {
    const cnt = await c.query(
      'SELECT count(*)::int AS n FROM notifications WHERE room = $1 AND namespace = $2 AND read_at IS NULL',
      [`user_${user}`, ns]);
    const rows = await c.query(
      `SELECT id, event, payload FROM notifications
       WHERE room = $1 AND namespace = $2 AND read_at IS NULL ORDER BY id DESC LIMIT ${LIMIT}`,
      [`user_${user}`, ns]);
    return { count: cnt.rows[0].n, items: rows.rows.map((x) => ({ id: Number(x.id), event: x.event, payload: x.payload })) };
  }

  const readAtOf = async (ids) => {
    const r = await c.query('SELECT id, read_at FROM notifications WHERE id = ANY($1::bigint[]) ORDER BY id', [ids]);
    return r.rows.map((x) => ({ id: Number(x.id), read: x.read_at !== null }));
  };

  // Checks an `unread` object against the SQL truth: exact count, items newest
  // first with every field, created_at a timestamp.
  function checkSnapshot(got, want, what) {
    assert.ok(got && typeof got === 'object', `${what}: not an object: ${JSON.stringify(got)}`);
    assert.equal(got.count, want.count, `${what}: count`);
    assert.ok(Array.isArray(got.items), `${what}: items is not an array: ${JSON.stringify(got)}`);
    assert.deepEqual(got.items.map((x) => x.id), want.items.map((x) => x.id), `${what}: item ids (newest first, at most ${LIMIT})`);
    for (const [i, it] of got.items.entries()) {
      assert.equal(it.event, want.items[i].event, `${what}: event of item ${it.id}`);
      assert.deepEqual(it.payload, want.items[i].payload, `${what}: payload of item ${it.id}`);
      assert.ok(typeof it.created_at === 'string' && !Number.isNaN(Date.parse(it.created_at)),
        `${what}: created_at of item ${it.id} is not a timestamp: ${JSON.stringify(it.created_at)}`);
    }
  }

  const isRead = (pred) => (e) => e.event === 'read' && pred(e.args[0] || {});
  const sameIds = (a, b) => Array.isArray(a) && JSON.stringify([...a].sort((x, y) => x - y)) === JSON.stringify([...b].sort((x, y) => x - y));

  test('unread on connect and as an ack (socket.io-client): newest 20, exact count, per namespace', T, withLogs(async () => {
    const u = newUser('snap');
    const other = newUser('other');
    const ids = await addRows(u, 25, { event: 'response' });
    await addRows(other, 3);                                   // another user's rows
    const nsIds = await addRows(u, 2, { ns: '/notifs' });      // same user, other namespace
    await c.query('UPDATE notifications SET read_at = now() WHERE id = $1', [ids[24]]);  // the newest is read
    const want = await expectedSnapshot(u);
    assert.equal(want.count, 24);
    assert.equal(want.items[0].id, ids[23], 'fixture: the newest unread row');

    const a = await connect(c.gateways[0].url, { token: c.token(u), label: `${u}@gw0` });
    const b = await connect(c.gateways[1].url, { token: c.token(u), ns: '/notifs', label: `${u}/notifs@gw1` });
    const ev = await a.waitFor((e) => e.event === 'unread', WAIT, "'unread' on connect");
    checkSnapshot(ev.args[0], want, "'unread' event on /");
    assert.equal(ev.args.length, 1, `'unread' carries one argument (no recovery offset): ${JSON.stringify(ev.args)}`);
    const acked = await ack(a, 'unread');
    assert.deepEqual(acked, ev.args[0], "emitWithAck('unread') returns the object of the 'unread' event");

    const evNs = await b.waitFor((e) => e.event === 'unread', WAIT, "'unread' on /notifs");
    checkSnapshot(evNs.args[0], await expectedSnapshot(u, '/notifs'), "'unread' event on /notifs");
    assert.deepEqual(evNs.args[0].items.map((x) => x.id), [nsIds[1], nsIds[0]]);

    // The ack reads the database now, not a cache from connect time.
    const [fresh] = await addRows(u, 1, { event: 'late' });
    const later = await ack(a, 'unread');
    assert.equal(later.count, 25);
    assert.equal(later.items[0].id, fresh);
    assert.equal(later.items.length, LIMIT);
    assert.equal(a.named('unread').length, 1, 'exactly one unread event on connect');
  }));

  test('unread with python-socketio: the event on connect and the ack', T, withLogs(async () => {
    const u = newUser('pysnap');
    await addRows(u, 23, { event: 'response' });
    const want = await expectedSnapshot(u);
    const p = await pyStart(c.gateways[1].url, c.token(u), `py ${u}@gw1`);
    const ev = await p.waitFor((e) => e.event === 'unread', WAIT, "'unread' on connect");
    assert.equal(ev.handler, 'named', "the named handler @sio.on('unread') got it");
    checkSnapshot(ev.args[0], want, "python: 'unread' event");
    const acked = await pyAck(p, 'unread');
    assert.deepEqual(acked, ev.args[0], "python: sio.call('unread') returns the object of the 'unread' event");
  }));

  test('mark_read / mark_all_read: acks, the read event in every tab on both gateways, SQL state', T, withLogs(async () => {
    const u = newUser('mark');
    const stranger = newUser('stranger');
    const ids = await addRows(u, 6);
    const strangerIds = await addRows(stranger, 2);
    const a = await connect(c.gateways[0].url, { token: c.token(u), label: `${u} tab A@gw0` });
    const b = await connect(c.gateways[1].url, { token: c.token(u), label: `${u} tab B@gw1` });
    const a2 = await connect(c.gateways[0].url, { token: c.token(u), label: `${u} tab C@gw0` });
    const p = await pyStart(c.gateways[1].url, c.token(u), `py ${u}@gw1`);
    const s = await connect(c.gateways[1].url, { token: c.token(stranger), label: `${stranger}@gw1` });
    for (const cl of [a, b, a2, p, s]) await cl.waitFor((e) => e.event === 'unread', WAIT, "'unread' on connect");
    const tabs = [a, b, a2, p];

    // One id.
    assert.deepEqual(await ack(a, 'mark_read', ids[0]), { unread: 5 });
    for (const cl of tabs) {
      const ev = await cl.waitFor(isRead((r) => sameIds(r.ids, [ids[0]])), WAIT, `'read' of ${ids[0]}`);
      assert.deepEqual(ev.args[0], { ids: [ids[0]], unread: 5 }, `${cl.label}: read event`);
      assert.equal(ev.args.length, 1, `${cl.label}: the ephemeral 'read' carries no recovery offset`);
    }
    assert.equal(p.named('read')[0].handler, 'named');

    // A list, from the second gateway.
    assert.deepEqual(await ack(b, 'mark_read', [ids[1], ids[2]]), { unread: 3 });
    for (const cl of tabs) {
      const ev = await cl.waitFor(isRead((r) => sameIds(r.ids, [ids[1], ids[2]])), WAIT, "'read' of a list");
      assert.equal(ev.args[0].unread, 3, `${cl.label}: unread after the list`);
    }

    // {"ids": [...]}, from python.
    assert.deepEqual(await pyAck(p, 'mark_read', [{ ids: [ids[3]] }]), { unread: 2 });
    for (const cl of tabs) {
      const ev = await cl.waitFor(isRead((r) => sameIds(r.ids, [ids[3]])), WAIT, "'read' of {ids}");
      assert.equal(ev.args[0].unread, 2);
    }
    assert.deepEqual(await readAtOf(ids), ids.map((id, i) => ({ id, read: i < 4 })), 'SQL: exactly the marked rows are read');

    // Marking an already read row again changes nothing.
    assert.deepEqual(await ack(a2, 'mark_read', ids[0]), { unread: 2 });

    // Every tab's snapshot agrees.
    const snap = await ack(b, 'unread');
    assert.equal(snap.count, 2);
    assert.deepEqual(snap.items.map((x) => x.id), [ids[5], ids[4]]);

    // mark_all_read.
    assert.deepEqual(await ack(a2, 'mark_all_read'), { unread: 0 });
    for (const cl of tabs) {
      const ev = await cl.waitFor(isRead((r) => r.ids === 'all'), WAIT, "'read' of all");
      assert.deepEqual(ev.args[0], { ids: 'all', unread: 0 }, `${cl.label}: read-all event`);
    }
    assert.ok((await readAtOf(ids)).every((x) => x.read), 'SQL: every row of the user is read');
    assert.deepEqual(await ack(a, 'unread'), { count: 0, items: [] });
    assert.deepEqual(await pyAck(p, 'unread'), { count: 0, items: [] });

    // The other user saw none of it, and kept its rows unread.
    await sleep(QUIET);
    assert.deepEqual(s.named('read'), [], `${stranger} received read events of ${u}`);
    assert.ok((await readAtOf(strangerIds)).every((x) => !x.read), "SQL: the stranger's rows are still unread");
    assert.equal((await ack(s, 'unread')).count, 2);
  }));

  test('a forged mark_read of another user\'s notification marks nothing', T, withLogs(async () => {
    const victim = newUser('victim');
    const thief = newUser('thief');
    const vIds = await addRows(victim, 3);
    const tIds = await addRows(thief, 2);
    const v = await connect(c.gateways[0].url, { token: c.token(victim), label: `${victim}@gw0` });
    const t = await connect(c.gateways[1].url, { token: c.token(thief), label: `${thief}@gw1` });
    const pt = await pyStart(c.gateways[0].url, c.token(thief), `py ${thief}@gw0`);
    for (const cl of [v, t, pt]) await cl.waitFor((e) => e.event === 'unread', WAIT, "'unread' on connect");

    // Only foreign ids: nothing marked, the thief's count unchanged (or an error ack).
    const forged = [
      await ack(t, 'mark_read', vIds[0]),
      await ack(t, 'mark_read', { ids: [vIds[1]] }),
      await pyAck(pt, 'mark_read', [[vIds[2]]]),
    ];
    for (const r of forged) {
      assert.ok(r && (typeof r.error === 'string' || r.unread === 2),
        `a forged mark_read must be an error ack or leave the thief's count (2): ${JSON.stringify(r)}`);
    }
    // Mixed: only the thief's own id is marked.
    const mixed = await ack(t, 'mark_read', [vIds[0], tIds[0]]);
    if (mixed.error === undefined) {
      assert.deepEqual(mixed, { unread: 1 }, 'a mixed list marks only the sender\'s own row');
      const ev = await t.waitFor(isRead((r) => Array.isArray(r.ids) && r.ids.includes(tIds[0])), WAIT, "the thief's own 'read'");
      assert.deepEqual(ev.args[0].ids, [tIds[0]], "the 'read' event lists only the ids actually marked");
    }
    assert.deepEqual(await readAtOf(vIds), vIds.map((id) => ({ id, read: false })), "SQL: the victim's rows keep read_at NULL");
    assert.equal((await ack(v, 'unread')).count, 3, "the victim's unread count is unchanged");

    // mark_all_read marks only the sender's rows.
    assert.deepEqual(await ack(t, 'mark_all_read'), { unread: 0 });
    assert.deepEqual(await readAtOf(tIds), tIds.map((id) => ({ id, read: true })), "SQL: the thief's own rows are read");
    assert.deepEqual(await readAtOf(vIds), vIds.map((id) => ({ id, read: false })), "SQL: mark_all_read left the victim's rows alone");
    assert.equal((await ack(v, 'unread')).count, 3, "the victim's unread count is unchanged after mark_all_read");
    await sleep(QUIET);
    assert.deepEqual(v.named('read'), [], `the victim received read events: ${JSON.stringify(v.named('read'))}`);

    // Malformed arguments are refused by the gateway with a message.
    for (const bad of ['abc', [], [1, 'x'], { ids: 'x' }, null, Array.from({ length: 1001 }, (_, i) => i + 1)]) {
      const r = await ack(t, 'mark_read', bad);
      assert.ok(r && typeof r.error === 'string' && r.error.length > 0,
        `mark_read ${JSON.stringify(bad).slice(0, 40)}: expected an error ack, got ${JSON.stringify(r)}`);
    }
    assert.ok(typeof (await pyAck(pt, 'mark_read', [])).error === 'string', 'mark_read without arguments (python): error ack');
  }));

  test('events handled by the default SQL function belfry_handle_event (deploy/sql example)', T, withLogs(async () => {
    const u = newUser('ev');
    const n = nonce();
    const a = await connect(c.gateways[0].url, { token: c.token(u), label: `${u}@gw0` });
    const p = await pyStart(c.gateways[1].url, c.token(u), `py ${u}@gw1`, { extraArgs: ['--events', 'unread,read,note'] });
    const fn = await c.query("SELECT to_regprocedure('belfry_handle_event(text,text,text,jsonb)') AS f");
    assert.ok(fn.rows[0].f, 'deploy/sql installs belfry_handle_event(text, text, text, jsonb)');

    // ping: the result is the ack, computed for the token's user.
    assert.deepEqual(await ack(a, 'ping'), { pong: true, user: u }, 'js: ping');
    assert.deepEqual(await pyAck(p, 'ping'), { pong: true, user: u }, 'python: ping');

    // note: the function INSERTs a notification, delivered to every tab of the user.
    const r = await ack(a, 'note', { text: `hello ${n}` });
    assert.ok(r && Number.isInteger(r.id) && r.id > 0, `note ack: ${JSON.stringify(r)}`);
    for (const cl of [a, p]) {
      const ev = await cl.waitFor((e) => e.event === 'note' && e.args[0]?.text === `hello ${n}`, WAIT, 'the note row');
      assert.deepEqual(ev.args[0], { text: `hello ${n}` });
    }
    assert.equal(p.named('note')[0].handler, 'named', 'python: def note(*args) got the row (with its offset)');
    const row = await c.query('SELECT room, namespace, event FROM notifications WHERE id = $1', [r.id]);
    assert.deepEqual(row.rows[0], { room: `user_${u}`, namespace: '/', event: 'note' });

    // Errors raised by the function and unknown events are error acks with the SQL message.
    for (const [who, call] of [['js', () => ack(a, 'note', { text: '' })], ['python', () => pyAck(p, 'note', [{}])]]) {
      const e = await call();
      assert.ok(e && typeof e.error === 'string' && /note takes/.test(e.error), `${who}: note without text: ${JSON.stringify(e)}`);
    }
    for (const [who, call] of [['js', () => ack(a, 'no_such_event', 1)], ['python', () => pyAck(p, 'no_such_event', [1])]]) {
      const e = await call();
      assert.ok(e && typeof e.error === 'string' && /unknown event: no_such_event/.test(e.error),
        `${who}: an unknown event is an error ack with the SQL message: ${JSON.stringify(e)}`);
    }
    // A failed call leaves the connection working.
    assert.deepEqual(await ack(a, 'ping'), { pong: true, user: u });
  }));

  test('publish: allowed by the token\'s publish claim, an INSERT delivered to the room; refused otherwise', T, withLogs(async () => {
    const pubUser = newUser('pub');
    const member = newUser('member');
    const plain = newUser('plain');
    const n = nonce();
    const room = `team_${n}`;
    const pubTok = c.token({ sub: pubUser, publish: ['chat_lobby', 'team_*'] });
    const memberTok = c.token({ sub: member, rooms: ['team_*', 'chat_*'] });
    const pub = await connect(c.gateways[0].url, { token: pubTok, label: `${pubUser} (publisher)@gw0` });
    const pyPub = await pyStart(c.gateways[1].url, pubTok, `py ${pubUser} (publisher)@gw1`);
    const m = await connect(c.gateways[1].url, { token: memberTok, label: `${member}@gw1` });
    const pm = await pyStart(c.gateways[0].url, memberTok, `py ${member}@gw0`, { extraArgs: ['--events', 'unread,read,chat'] });
    const pl = await connect(c.gateways[0].url, { token: c.token(plain), label: `${plain} (no claim)@gw0` });
    assert.deepEqual(await ack(m, 'join', room), { ok: true });
    assert.deepEqual(await pyAck(pm, 'join', [{ room }]), { ok: true });
    assert.deepEqual(await ack(m, 'join', 'chat_lobby'), { ok: true });

    const payload = { text: 'hello team', n };
    const r1 = await ack(pub, 'publish', { room, event: 'chat', payload });
    assert.ok(r1 && Number.isInteger(r1.id) && r1.id > 0, `publish ack: ${JSON.stringify(r1)}`);
    const row = await c.query('SELECT namespace, room, event, payload FROM notifications WHERE id = $1', [r1.id]);
    assert.deepEqual(row.rows[0], { namespace: '/', room, event: 'chat', payload }, 'the publish is a row of the log');
    for (const cl of [m, pm]) {
      const ev = await cl.waitFor((e) => e.event === 'chat' && e.args[0]?.n === n, WAIT, 'the published chat');
      assert.deepEqual(ev.args[0], payload, `${cl.label}: payload`);
    }
    assert.equal(pm.named('chat')[0].handler, 'named', 'python handler def chat(*args) got it');

    // From python, to an exactly named room, without an event name.
    const r2 = await pyAck(pyPub, 'publish', [{ room: 'chat_lobby', payload: { n, from: 'py' } }]);
    assert.ok(r2 && Number.isInteger(r2.id) && r2.id > r1.id, `python publish ack: ${JSON.stringify(r2)}`);
    const ev2 = await m.waitFor((e) => e.args[0]?.n === n && e.args[0]?.from === 'py', WAIT, 'the python publish');
    assert.equal(ev2.event, 'notification', 'a publish without an event name is a "notification"');

    // Refusals: no claim; a room outside the claim; an exact name is not a prefix; another user's room.
    const refusals = [
      [pl, { room, event: 'chat', payload: { n } }],
      [pub, { room: `other_${n}`, event: 'chat', payload: { n } }],
      [pub, { room: 'chat_lobby2', event: 'chat', payload: { n } }],
      [pub, { room: `user_${member}`, event: 'chat', payload: { n } }],
    ];
    for (const [cl, arg] of refusals) {
      const r = await ack(cl, 'publish', arg);
      assert.ok(r && typeof r.error === 'string' && /not allowed/.test(r.error), `${cl.label} publish to ${arg.room}: ${JSON.stringify(r)}`);
    }
    assert.ok(typeof (await pyAck(pyPub, 'publish', [{ room: `x_${n}`, payload: {} }])).error === 'string', 'python: refused publish');
    assert.ok(typeof (await ack(pub, 'publish', { event: 'chat' })).error === 'string', 'publish without a room: error ack');
    const inserted = await c.query("SELECT count(*)::int AS n FROM notifications WHERE payload->>'n' = $1", [n]);
    assert.equal(inserted.rows[0].n, 2, 'refused publishes insert nothing');
    await sleep(QUIET);
    assert.equal(m.events.filter((e) => e.args[0]?.n === n).length, 2, 'the member received the two allowed publishes only');
  }));

  test('join / leave with acks, allowed by the token\'s rooms claim', T, withLogs(async () => {
    const u = newUser('rooms');
    const n = nonce();
    const tok = c.token({ sub: u, rooms: [`lobby_${n}`, `game_${n}_*`] });
    const a = await connect(c.gateways[0].url, { token: tok, label: `${u}@gw0` });
    const p = await pyStart(c.gateways[1].url, tok, `py ${u}@gw1`);
    for (const [who, j] of [['js', (ev, room) => ack(a, ev, room)], ['python', (ev, room) => pyAck(p, ev, [{ room }])]]) {
      assert.deepEqual(await j('join', `lobby_${n}`), { ok: true }, `${who}: join lobby`);
      assert.deepEqual(await j('join', `game_${n}_7`), { ok: true }, `${who}: join by prefix`);
      for (const room of [`secret_${n}`, `lobby_${n}x`, 'user_somebody_else', `game_${n}`]) {
        const r = await j('join', room);
        assert.ok(r && typeof r.error === 'string' && /not allowed/.test(r.error), `${who}: join ${room} must be refused: ${JSON.stringify(r)}`);
      }
    }
    const bad = await ack(a, 'join', 42);
    assert.ok(bad && typeof bad.error === 'string', `join with a number: ${JSON.stringify(bad)}`);

    await c.insert({ room: `lobby_${n}`, event: 'lobby', payload: { n } });
    await c.insert({ room: `game_${n}_7`, event: 'game', payload: { n } });
    await c.insert({ room: `secret_${n}`, event: 'secret', payload: { n } });
    for (const cl of [a, p]) {
      await cl.waitFor((e) => e.event === 'lobby' && e.args[0]?.n === n, WAIT, 'lobby row');
      await cl.waitFor((e) => e.event === 'game' && e.args[0]?.n === n, WAIT, 'game row');
    }
    assert.deepEqual(await ack(a, 'leave', `lobby_${n}`), { ok: true });
    assert.deepEqual(await pyAck(p, 'leave', [`lobby_${n}`]), { ok: true });
    await c.insert({ room: `lobby_${n}`, event: 'lobby_after_leave', payload: { n } });
    await c.insert({ room: `user_${u}`, event: 'sentinel', payload: { n } });
    for (const cl of [a, p]) {
      await cl.waitFor((e) => e.event === 'sentinel' && e.args[0]?.n === n, WAIT, 'sentinel');
      await sleep(200);
      assert.deepEqual(cl.events.filter((e) => e.args[0]?.n === n).map((e) => e.event), ['lobby', 'game', 'sentinel'],
        `${cl.label}: rows of refused or left rooms must not arrive`);
    }
  }));

  test('10,000 unread rows: the snapshot is bounded (20 items) with the exact count', T, withLogs(async () => {
    const u = newUser('big');
    await addRows(u, 10000, { event: 'bulk' });
    await c.query(
      `UPDATE notifications SET read_at = now()
       WHERE id IN (SELECT id FROM notifications WHERE room = $1 ORDER BY id LIMIT 7)`, [`user_${u}`]);
    await addRows(u, 7, { event: 'bulk2' });                   // 10,000 unread in all
    // Let the broker publish the bulk first (a sentinel after it reaches a
    // watcher), so the client below gets its snapshot, not a live stream.
    const w = newUser('watch');
    const watcher = await connect(c.gateways[0].url, { token: c.token(w), label: `${w} (watcher)@gw0` });
    await c.insert({ room: `user_${w}`, event: 'sentinel', payload: {} });
    await watcher.waitFor((e) => e.event === 'sentinel', WAIT * 3, 'the sentinel after the bulk insert');
    const want = await expectedSnapshot(u);
    assert.equal(want.count, 10000);
    const t0 = Date.now();
    const a = await connect(c.gateways[0].url, { token: c.token(u), label: `${u}@gw0` });
    const ev = await a.waitFor((e) => e.event === 'unread', WAIT, "'unread' on connect");
    const ms = Date.now() - t0;
    checkSnapshot(ev.args[0], want, '10k: unread event');
    const p = await pyStart(c.gateways[1].url, c.token(u), `py ${u}@gw1`);
    const pev = await p.waitFor((e) => e.event === 'unread', WAIT, "'unread' on connect");
    checkSnapshot(pev.args[0], want, '10k: python unread event');
    checkSnapshot(await ack(a, 'unread'), want, '10k: unread ack');
    console.log(`# 10,000 unread: connect + snapshot in ${ms} ms, ${JSON.stringify(ev.args[0]).length} bytes`);

    // mark_all_read on 10,000 rows: one ack, one read event in both tabs.
    assert.deepEqual(await pyAck(p, 'mark_all_read'), { unread: 0 });
    await a.waitFor(isRead((r) => r.ids === 'all' && r.unread === 0), WAIT, "'read' of all");
    assert.deepEqual(await ack(a, 'unread'), { count: 0, items: [] });
  }));

  test('a connect storm: every user gets its own snapshot (batched reads do not mix users)', T, withLogs(async () => {
    const USERS = 120;
    const users = Array.from({ length: USERS }, () => newUser('storm'));
    // user k has (k % 23) + 1 unread rows: some above the limit, most below.
    await c.query(
      `INSERT INTO notifications (room, event, payload)
       SELECT 'user_' || u, 'storm', jsonb_build_object('u', u, 'i', g)
       FROM unnest($1::text[]) WITH ORDINALITY AS x(u, k), generate_series(1, ((k - 1) % 23 + 1)::int) g`, [users]);
    const t0 = Date.now();
    const clients = await Promise.all(users.map((u, k) =>
      connect(c.gateways[k % 2].url, { token: c.token(u), label: `${u}@gw${k % 2}` })));
    const snaps = await Promise.all(clients.map((cl) => cl.waitFor((e) => e.event === 'unread', WAIT * 2, "'unread' on connect")));
    console.log(`# connect storm: ${USERS} clients connected with their snapshot in ${Date.now() - t0} ms`);
    for (const [k, u] of users.entries()) {
      const got = snaps[k].args[0];
      const rows = k % 23 + 1;
      assert.equal(got.count, rows, `${u}: count`);
      assert.equal(got.items.length, Math.min(rows, LIMIT), `${u}: items`);
      assert.ok(got.items.every((it) => it.payload.u === u), `${u}: an item of another user: ${JSON.stringify(got.items[0])}`);
      assert.deepEqual(got.items.map((it) => it.payload.i), Array.from({ length: Math.min(rows, LIMIT) }, (_, i) => rows - i), `${u}: newest first`);
    }
  }));

  // Last: restarts the broker with another event function.
  test('a custom SQL event function (--event-function): results, identity, and a raise becomes an error ack', T, withLogs(async () => {
    await c.query(`
      CREATE OR REPLACE FUNCTION center_test_events(p_user text, p_ns text, p_name text, p_args jsonb)
      RETURNS jsonb LANGUAGE plpgsql AS $$
      BEGIN
        IF p_name = 'whoami' THEN
          RETURN jsonb_build_object('user', p_user, 'ns', p_ns, 'name', p_name, 'args', p_args);
        ELSIF p_name = 'boom' THEN
          RAISE EXCEPTION 'boom for %: %', p_user, p_args->>0;
        ELSIF p_name = 'divide' THEN
          RETURN to_jsonb(1 / (p_args->>0)::int);
        END IF;
        RETURN jsonb_build_object('unhandled', p_name);
      END $$`);
    c.brokerArgs = [...c.brokerArgs, '--event-function', 'center_test_events'];
    const mark = c.logMark();
    await c.restartBroker();
    await c.waitLeader(mark);                       // the gateways saw the new epoch
    const u = newUser('custom');
    const a = await connect(c.gateways[0].url, { token: c.token(u), label: `${u}@gw0` });
    const p = await pyStart(c.gateways[1].url, c.token(u), `py ${u}@gw1`, { namespaces: ['/', '/notifs'] });

    const args = [1, 'two', { three: [3] }, null];
    assert.deepEqual(await ack(a, 'whoami', ...args), { user: u, ns: '/', name: 'whoami', args },
      'the function gets the token\'s user, the namespace, the name and the arguments as a JSON array');
    assert.deepEqual(await pyAck(p, 'whoami', args, { ns: '/notifs' }), { user: u, ns: '/notifs', name: 'whoami', args });
    assert.deepEqual(await pyAck(p, 'whoami'), { user: u, ns: '/', name: 'whoami', args: [] });
    // The user comes from the token, not from anything the client sends.
    assert.equal((await ack(a, 'whoami', { user: 'admin' })).user, u);
    assert.equal(await ack(a, 'divide', 4), 0, 'a scalar result is the ack');

    for (const [who, r] of [['js', await ack(a, 'boom', 'kaboom')], ['python', await pyAck(p, 'boom', ['kaboom'])]]) {
      assert.ok(r && typeof r.error === 'string' && r.error.includes(`boom for ${u}: kaboom`),
        `${who}: RAISE EXCEPTION becomes an error ack with the message: ${JSON.stringify(r)}`);
    }
    const div = await ack(a, 'divide', 0);
    assert.ok(div && typeof div.error === 'string' && /division by zero/.test(div.error), `an SQL runtime error: ${JSON.stringify(div)}`);
    // Errors leave the connection and the broker working.
    assert.deepEqual(await ack(a, 'whoami'), { user: u, ns: '/', name: 'whoami', args: [] });
    assert.equal((await ack(a, 'unread')).count, 0);
  }));
});
