'use strict';
// Delivery through PostgreSQL -> broker -> two gateways -> socket.io-client:
// personal rooms across gateways, isolation between users (including room
// names that are prefixes of each other), broadcast to `all`, a namespace
// other than `/`, defaults of the event column, and the `token` query param.

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Manager } = require('socket.io-client');
const { Cluster, withLogs, sleep, SLOW } = require('./lib/harness');
const { connect, closeAll, DEFAULT_WAIT, Recorder } = require('./lib/clients');

const T = { timeout: 60000 * SLOW };
const nonce = () => crypto.randomBytes(6).toString('hex');
// After the sentinel has arrived, a stray message would already have been
// delivered (same broker stream, ordered); this grace only covers scheduling.
const GRACE = 300;

describe('delivery', () => {
  let c;
  before(async () => { c = await Cluster.start({ name: 'delivery', gateways: 2 }); });
  afterEach(() => closeAll());
  after(async () => { await closeAll(); if (c) await c.stop(); });

  test('a row for user_42 reaches every client of user 42 on both gateways', T, withLogs(async () => {
    const [g0, g1] = c.gateways;
    const a = await connect(g0.url, { token: c.token(42), label: 'u42@gw0' });
    const b = await connect(g1.url, { token: c.token(42), label: 'u42@gw1' });
    const n = nonce();
    const payload = { meta: 'New notifications', notif_count: 3, nonce: n };
    await c.insert({ room: 'user_42', event: 'response', payload });
    for (const cl of [a, b]) {
      const ev = await cl.waitFor((e) => e.event === 'response' && e.args[0]?.nonce === n, DEFAULT_WAIT, `'response' ${n}`);
      assert.deepEqual(ev.args[0], payload);
    }
    // Exactly once each.
    await sleep(GRACE);
    for (const cl of [a, b]) assert.equal(cl.events.filter((e) => e.args[0]?.nonce === n).length, 1, `${cl.label} got duplicates`);
  }));

  test('default event name is "notification" and default payload is {}', T, withLogs(async () => {
    const a = await connect(c.gateways[0].url, { token: c.token(42), label: 'u42@gw0' });
    const n = nonce();
    await c.insert({ room: 'user_42', payload: { nonce: n } });
    const ev = await a.waitFor((e) => e.args[0]?.nonce === n, DEFAULT_WAIT, `row ${n}`);
    assert.equal(ev.event, 'notification');
    await c.insert({ room: 'user_42', event: `empty_${n}` });
    const ev2 = await a.waitFor((e) => e.event === `empty_${n}`, DEFAULT_WAIT, `empty_${n}`);
    assert.deepEqual(ev2.args[0], {});
  }));

  test('isolation: user 43, user 4 and user 420 never see user 42\'s rows', T, withLogs(async () => {
    const [g0, g1] = c.gateways;
    const u42a = await connect(g0.url, { token: c.token(42), label: 'u42@gw0' });
    const u42b = await connect(g1.url, { token: c.token(42), label: 'u42@gw1' });
    const u43a = await connect(g0.url, { token: c.token(43), label: 'u43@gw0' });
    const u43b = await connect(g1.url, { token: c.token(43), label: 'u43@gw1' });
    const u4 = await connect(g0.url, { token: c.token(4), label: 'u4@gw0' });
    const u420 = await connect(g1.url, { token: c.token(420), label: 'u420@gw1' });
    const n = nonce();
    await c.insert({ room: 'user_42', event: 'secret', payload: { for: 42, nonce: n } });
    await c.insert({ room: 'user_420', event: 'secret', payload: { for: 420, nonce: n } });
    await c.insert({ room: 'user_4', event: 'secret', payload: { for: 4, nonce: n } });
    // Sentinels, committed after the rows above, one per room.
    for (const room of ['user_42', 'user_43', 'user_4', 'user_420']) {
      await c.insert({ room, event: 'sentinel', payload: { room, nonce: n } });
    }
    const all = [[u42a, 'user_42'], [u42b, 'user_42'], [u43a, 'user_43'], [u43b, 'user_43'], [u4, 'user_4'], [u420, 'user_420']];
    for (const [cl, room] of all) {
      await cl.waitFor((e) => e.event === 'sentinel' && e.args[0]?.nonce === n && e.args[0]?.room === room, DEFAULT_WAIT, `sentinel for ${room}`);
    }
    await sleep(GRACE);
    const owner = { user_42: 42, user_43: 43, user_4: 4, user_420: 420 };
    for (const [cl, room] of all) {
      const mine = cl.events.filter((e) => e.args[0]?.nonce === n);
      const foreign = mine.filter((e) => (e.event === 'secret' && e.args[0].for !== owner[room]) || (e.event === 'sentinel' && e.args[0].room !== room));
      assert.deepEqual(foreign, [], `${cl.label} received rows of other users`);
      if (owner[room] !== 43) {
        assert.equal(mine.filter((e) => e.event === 'secret').length, 1, `${cl.label} should get its own row once`);
      }
    }
  }));

  test('a row for room "all" reaches every client on both gateways', T, withLogs(async () => {
    const [g0, g1] = c.gateways;
    const clients = [
      await connect(g0.url, { token: c.token(42), label: 'u42@gw0' }),
      await connect(g1.url, { token: c.token(42), label: 'u42@gw1' }),
      await connect(g0.url, { token: c.token(43), label: 'u43@gw0' }),
      await connect(g1.url, { token: c.token(7), label: 'u7@gw1' }),
      await connect(g1.url, { token: c.token('alice'), label: 'ualice@gw1' }),
    ];
    const n = nonce();
    const payload = { meta: 'maintenance at 22:00', nonce: n };
    await c.insert({ room: 'all', event: 'broadcast', payload });
    for (const cl of clients) {
      const ev = await cl.waitFor((e) => e.event === 'broadcast' && e.args[0]?.nonce === n, DEFAULT_WAIT, `broadcast ${n}`);
      assert.deepEqual(ev.args[0], payload);
    }
  }));

  test('namespace /notifs: its rows reach /notifs clients and not / clients, and vice versa', T, withLogs(async () => {
    const [g0, g1] = c.gateways;
    const nsA = await connect(g0.url, { ns: '/notifs', token: c.token(42), label: 'u42@gw0/notifs' });
    const nsB = await connect(g1.url, { ns: '/notifs', token: c.token(42), label: 'u42@gw1/notifs' });
    const rootA = await connect(g0.url, { token: c.token(42), label: 'u42@gw0/' });
    const rootB = await connect(g1.url, { token: c.token(42), label: 'u42@gw1/' });
    const n = nonce();
    await c.insert({ namespace: '/notifs', room: 'user_42', event: 'ns_test', payload: { ns: '/notifs', k: 1, nonce: n } });
    await c.insert({ namespace: '/', room: 'user_42', event: 'ns_test', payload: { ns: '/', k: 2, nonce: n } });
    await c.insert({ namespace: '/notifs', room: 'all', event: 'ns_test', payload: { ns: '/notifs', k: 3, nonce: n } });
    await c.insert({ namespace: '/', room: 'all', event: 'ns_test', payload: { ns: '/', k: 4, nonce: n } });
    for (const [cl, ns] of [[nsA, '/notifs'], [nsB, '/notifs'], [rootA, '/'], [rootB, '/']]) {
      const got = await cl.waitForCount((e) => e.event === 'ns_test' && e.args[0]?.nonce === n && e.args[0]?.ns === ns, 2, DEFAULT_WAIT, `ns_test rows of ${ns}`);
      assert.deepEqual(got.map((e) => e.args[0].k), ns === '/' ? [2, 4] : [1, 3]);
    }
    await sleep(GRACE);
    for (const [cl, ns] of [[nsA, '/notifs'], [nsB, '/notifs'], [rootA, '/'], [rootB, '/']]) {
      const wrong = cl.events.filter((e) => e.args[0]?.nonce === n && e.args[0]?.ns !== ns);
      assert.deepEqual(wrong, [], `${cl.label} received rows of another namespace`);
    }
  }));

  test('one Engine.IO connection carrying / and /notifs gets each namespace\'s rows on the right socket', T, withLogs(async () => {
    const m = new Manager(c.gateways[1].url, { transports: ['websocket'], reconnection: false, timeout: DEFAULT_WAIT });
    const token = c.token(42);
    const sRoot = m.socket('/', { auth: { token } });
    const sNs = m.socket('/notifs', { auth: { token } });
    const rRoot = new Recorder('mux /');
    const rNs = new Recorder('mux /notifs');
    sRoot.onAny((event, ...args) => rRoot.push({ event, args }));
    sNs.onAny((event, ...args) => rNs.push({ event, args }));
    const up = (s, name) => new Promise((resolve, reject) => {
      s.once('connect', resolve);
      s.once('connect_error', (e) => reject(new Error(`${name}: connect_error ${e.message}`)));
    });
    try {
      sRoot.connect(); sNs.connect();
      await Promise.all([up(sRoot, '/'), up(sNs, '/notifs')]);
      const n = nonce();
      await c.insert({ namespace: '/notifs', room: 'user_42', event: 'mux', payload: { ns: '/notifs', nonce: n } });
      await c.insert({ namespace: '/', room: 'user_42', event: 'mux', payload: { ns: '/', nonce: n } });
      await rNs.waitFor((e) => e.event === 'mux' && e.args[0]?.nonce === n, DEFAULT_WAIT, 'mux row on /notifs');
      await rRoot.waitFor((e) => e.event === 'mux' && e.args[0]?.nonce === n, DEFAULT_WAIT, 'mux row on /');
      await sleep(GRACE);
      assert.deepEqual(rNs.events.filter((e) => e.args[0]?.nonce === n).map((e) => e.args[0].ns), ['/notifs']);
      assert.deepEqual(rRoot.events.filter((e) => e.args[0]?.nonce === n).map((e) => e.args[0].ns), ['/']);
    } finally {
      sRoot.disconnect(); sNs.disconnect(); m.engine?.close();
    }
  }));

  test('the token query parameter authenticates too', T, withLogs(async () => {
    const a = await connect(c.gateways[1].url, { queryToken: c.token(42), label: 'u42@gw1(query token)' });
    const b = await connect(c.gateways[0].url, { ns: '/notifs', queryToken: c.token(42), label: 'u42@gw0/notifs(query token)' });
    const n = nonce();
    await c.insert({ room: 'user_42', event: 'q', payload: { nonce: n } });
    await c.insert({ namespace: '/notifs', room: 'user_42', event: 'q', payload: { nonce: n } });
    await a.waitFor((e) => e.event === 'q' && e.args[0]?.nonce === n, DEFAULT_WAIT, `q ${n}`);
    await b.waitFor((e) => e.event === 'q' && e.args[0]?.nonce === n, DEFAULT_WAIT, `q ${n} on /notifs`);
  }));

  test('payloads keep nested JSON, unicode and large values intact', T, withLogs(async () => {
    const a = await connect(c.gateways[0].url, { token: c.token(42), label: 'u42@gw0' });
    const n = nonce();
    const payload = {
      nonce: n, text: 'héllo — 日本語 🎉 "quotes" \\ back\nslash', nested: { list: [1, 2.5, -3, true, false, null, { x: 'y' }] },
      big: 'x'.repeat(100000),
    };
    await c.insert({ room: 'user_42', event: 'rich', payload });
    const ev = await a.waitFor((e) => e.event === 'rich' && e.args[0]?.nonce === n, DEFAULT_WAIT, `rich ${n}`);
    assert.deepEqual(ev.args[0], payload);
  }));
});
