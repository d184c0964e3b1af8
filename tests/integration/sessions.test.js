'use strict';
// Rooms from the client and the server-side disconnect, on every transport
// the official clients use (issue 3): join/leave allowed by the token's
// `rooms` claim and acknowledged (a refusal is an error ack, never silence),
// and a socket whose token expires is disconnected by the server — the
// official client reports "io server disconnect" and does not reconnect by
// itself; python-socketio sees its namespace disconnected.
//
// Real PostgreSQL, broker and gateway (tests/integration/lib/harness.js).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Cluster } = require('./lib/harness');
const { connect, connectPy, closeAll } = require('./lib/clients');

const T = { timeout: 60000 };
const MODES = [
  { name: 'default transports (polling, then upgrade)', transports: ['polling', 'websocket'] },
  { name: "transports ['polling']", transports: ['polling'] },
  { name: "transports ['websocket']", transports: ['websocket'] },
];

let cluster;
before(async () => { cluster = await Cluster.start({ name: 'sessions', gateways: 1 }); });
after(async () => { await closeAll(); if (cluster) await cluster.stop(); });

const url = () => cluster.gateways[0].url;
// Payload of a notification event (the offset string is the last argument).
const payloadOf = (e) => e.args[0];

for (const mode of MODES) {
  describe(`socket.io-client, ${mode.name}`, () => {
    test('join and leave rooms the token allows, with acks; refusals are error acks', T, async () => {
      const user = `s${mode.transports.length}${mode.transports[0][0]}`;
      const token = cluster.token({ sub: user, rooms: ['team_*', 'lobby'] });
      const c = await connect(url(), { token, transports: mode.transports, label: `${user}` });

      assert.deepEqual(await c.socket.emitWithAck('join', 'team_red'), { ok: true });
      assert.deepEqual(await c.socket.emitWithAck('join', { room: 'lobby' }), { ok: true });
      const refused = await c.socket.emitWithAck('join', 'user_someone_else');
      assert.ok(refused && /not allowed/.test(refused.error), `join refused: ${JSON.stringify(refused)}`);
      const bad = await c.socket.emitWithAck('join', 42);
      assert.ok(bad && typeof bad.error === 'string', `a non-string room: ${JSON.stringify(bad)}`);

      await cluster.insert({ room: 'team_red', event: 'team', payload: { n: 1 } });
      const got = await c.waitFor((e) => e.event === 'team', 10000, 'team_red notification');
      assert.deepEqual(payloadOf(got), { n: 1 });

      assert.deepEqual(await c.socket.emitWithAck('leave', 'team_red'), { ok: true });
      // After leaving, team_red rows no longer come; a row to the user's own
      // room, inserted after it, proves the stream went on.
      await cluster.insert({ room: 'team_red', event: 'team', payload: { n: 2 } });
      await cluster.insert({ room: `user_${user}`, event: 'sentinel', payload: {} });
      await c.waitFor((e) => e.event === 'sentinel', 10000, 'sentinel');
      assert.equal(c.named('team').length, 1, 'nothing from a room after leaving it');
      c.close();
    });

    test('the server disconnects a socket when its token expires ("io server disconnect")', T, async () => {
      const token = cluster.token({ sub: 'expiring', exp: Math.floor(Date.now() / 1000) + 2 });
      const c = await connect(url(), { token, transports: mode.transports, reconnection: true, label: 'expiring' });
      const reason = await new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no disconnect within 8 s')), 8000);
        c.socket.once('disconnect', (r) => { clearTimeout(t); resolve(r); });
      });
      assert.equal(reason, 'io server disconnect');
      // A server-side disconnect is final for the client: it does not reconnect.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(c.socket.connected, false, 'the client stayed disconnected');
      c.close();
    });
  });
}

describe('python-socketio', () => {
  test('the server disconnects a socket when its token expires', T, async () => {
    const token = cluster.token({ sub: 'py-expiring', exp: Math.floor(Date.now() / 1000) + 2 });
    const { client, ready } = connectPy(url(), { token, label: 'py-expiring' });
    await ready;
    const st = await client.status.waitFor((m) => m.type === 'disconnect', 10000, 'disconnect');
    assert.equal(st.ns, '/');
    await client.close();
  });
});
