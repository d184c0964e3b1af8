'use strict';
// Identity at the gateway: a missing, malformed, expired, wrongly signed or
// alg:none token is refused with a Socket.IO CONNECT_ERROR carrying a message
// (the client sees connect_error), in every namespace and via the query
// parameter too; the gateway keeps serving good clients afterwards.

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Cluster, withLogs, mintJwt, SLOW } = require('./lib/harness');
const { connect, expectConnectError, closeAll, DEFAULT_WAIT } = require('./lib/clients');

const T = { timeout: 60000 * SLOW };
const TRANSPORT_ERRORS = new Set(['websocket error', 'xhr poll error', 'timeout', 'server error', 'transport close']);

// The error must come from a CONNECT_ERROR packet, not from a dropped transport.
function assertRefusal(err, label) {
  assert.ok(err instanceof Error, `${label}: not an Error`);
  assert.equal(typeof err.message, 'string', `${label}: no message`);
  assert.ok(err.message.length > 0, `${label}: empty message`);
  assert.ok(!TRANSPORT_ERRORS.has(err.message) && err.type !== 'TransportError',
    `${label}: the connection failed at the transport level (${err.message}), not with CONNECT_ERROR`);
}

describe('auth', () => {
  let c;
  before(async () => { c = await Cluster.start({ name: 'auth', gateways: 1 }); });
  afterEach(() => closeAll());
  after(async () => { await closeAll(); if (c) await c.stop(); });

  const now = () => Math.floor(Date.now() / 1000);
  const cases = {
    'missing token': () => ({}),
    'empty token': () => ({ token: '' }),
    'malformed token': () => ({ token: 'not-a-jwt' }),
    'three garbage parts': () => ({ token: 'a.b.c' }),
    'wrong signature (other secret)': () => ({ token: mintJwt(42, { secret: 'not-the-secret' }) }),
    'expired token': () => ({ token: c.token(42, { expIn: -120 }) }),
    'alg none': () => ({ token: mintJwt(42, { alg: 'none' }) }),
    'no sub claim': () => ({ token: mintJwt({ exp: now() + 3600 }, { secret: c.jwtSecret }) }),
    'token is not a string': () => ({ auth: { token: 12345 } }),
    'tampered payload': () => {
      const [h, , s] = c.token(42).split('.');
      const p = Buffer.from(JSON.stringify({ sub: '1', exp: now() + 3600 })).toString('base64url');
      return { token: `${h}.${p}.${s}` };
    },
  };

  for (const [name, make] of Object.entries(cases)) {
    test(`refused with connect_error: ${name}`, T, withLogs(async () => {
      const err = await expectConnectError(c.gateways[0].url, { ...make(), label: name });
      assertRefusal(err, name);
    }));
  }

  test('refused in namespace /notifs and via the query parameter', T, withLogs(async () => {
    assertRefusal(await expectConnectError(c.gateways[0].url, { ns: '/notifs', token: c.token(42, { expIn: -120 }), label: '/notifs expired' }), '/notifs expired');
    assertRefusal(await expectConnectError(c.gateways[0].url, { ns: '/notifs', label: '/notifs missing' }), '/notifs missing');
    assertRefusal(await expectConnectError(c.gateways[0].url, { queryToken: mintJwt(42, { secret: 'nope' }), label: 'query bad sig' }), 'query bad sig');
  }));

  test('after many refusals the gateway still delivers to a good client', T, withLogs(async () => {
    const refusals = [];
    for (let i = 0; i < 20; i++) {
      refusals.push(expectConnectError(c.gateways[0].url, { token: `garbage.${i}.x`, label: `bad${i}` }));
    }
    await Promise.all(refusals);
    const good = await connect(c.gateways[0].url, { token: c.token(42), label: 'u42' });
    const n = crypto.randomBytes(4).toString('hex');
    await c.insert({ room: 'user_42', event: 'after_refusals', payload: { nonce: n } });
    await good.waitFor((e) => e.event === 'after_refusals' && e.args[0]?.nonce === n, DEFAULT_WAIT, 'row after refusals');
  }));
});
