'use strict';
// The same core checks with the Debian python-socketio 5.7 client over
// WebSocket (tests/integration/py/client.py, run with /usr/bin/python3):
// personal room on both gateways, isolation, broadcast, namespace /notifs,
// and a refused token.

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Cluster, withLogs, sleep, mintJwt, SLOW } = require('./lib/harness');
const { connectPy, closeAll, DEFAULT_WAIT } = require('./lib/clients');

const T = { timeout: 90000 * SLOW };
const nonce = () => crypto.randomBytes(6).toString('hex');

describe('python-socketio client', () => {
  let c;
  before(async () => { c = await Cluster.start({ name: 'python', gateways: 2 }); });
  afterEach(() => closeAll());
  after(async () => { await closeAll(); if (c) await c.stop(); });

  test('personal room on both gateways, isolation, broadcast and /notifs', T, withLogs(async () => {
    const [g0, g1] = c.gateways;
    const starts = [
      connectPy(g0.url, { token: c.token(42), namespaces: ['/', '/notifs'], label: 'py u42@gw0 [/,/notifs]' }),
      connectPy(g1.url, { token: c.token(42), namespaces: ['/'], label: 'py u42@gw1 [/]' }),
      connectPy(g0.url, { token: c.token(43), namespaces: ['/'], label: 'py u43@gw0 [/]' }),
    ];
    const [p42a, p42b, p43] = await Promise.all(starts.map((s) => s.ready));
    const n = nonce();
    const payload = { meta: 'New notifications', notif_count: 3, nonce: n };
    await c.insert({ room: 'user_42', event: 'response', payload });
    await c.insert({ namespace: '/notifs', room: 'user_42', event: 'ns_row', payload: { nonce: n } });
    await c.insert({ room: 'all', event: 'broadcast', payload: { nonce: n } });
    await c.insert({ room: 'user_43', event: 'sentinel', payload: { nonce: n } });

    const is = (ev, ns) => (e) => e.event === ev && e.ns === ns && e.args[0]?.nonce === n;
    for (const p of [p42a, p42b]) {
      const ev = await p.waitFor(is('response', '/'), DEFAULT_WAIT, `'response' on /`);
      assert.deepEqual(ev.args[0], payload);
    }
    await p42a.waitFor(is('ns_row', '/notifs'), DEFAULT_WAIT, `'ns_row' on /notifs`);
    for (const p of [p42a, p42b, p43]) await p.waitFor(is('broadcast', '/'), DEFAULT_WAIT, `'broadcast' on /`);
    await p43.waitFor(is('sentinel', '/'), DEFAULT_WAIT, 'sentinel for user 43');
    await sleep(300);
    assert.deepEqual(p43.events.filter((e) => e.args[0]?.nonce === n).map((e) => e.event), ['broadcast', 'sentinel'], 'user 43 sees only its own rows and the broadcast');
    assert.deepEqual(p42b.events.filter((e) => e.args[0]?.nonce === n).map((e) => e.event), ['response', 'broadcast'], 'a / client of user 42 sees no /notifs row');
    assert.deepEqual(p42a.events.filter((e) => e.args[0]?.nonce === n).map((e) => `${e.ns}:${e.event}`).sort(),
      ['/:broadcast', '/:response', '/notifs:ns_row'], 'each row once, on its own namespace');
  }));

  test('an expired or wrongly signed token gets connect_error with a message', T, withLogs(async () => {
    for (const [name, token] of [['expired', c.token(42, { expIn: -120 })], ['bad signature', mintJwt(42, { secret: 'wrong' })]]) {
      const { ready } = connectPy(c.gateways[0].url, { token, namespaces: ['/'], waitTimeout: 2, label: `py ${name}` });
      const err = await ready.then(() => null, (e) => e);
      assert.ok(err, `${name}: the python client connected although it should have been refused`);
      const ce = (err.statuses || []).find((m) => m.type === 'connect_error');
      assert.ok(ce, `${name}: no connect_error event; saw ${JSON.stringify(err.statuses)}`);
      const data = ce.data;
      const message = typeof data === 'string' ? data : data && data.message;
      assert.ok(typeof message === 'string' && message.length > 0, `${name}: connect_error without a message: ${JSON.stringify(data)}`);
    }
  }));
});
