'use strict';
// Durability across process faults: rows inserted while the broker is
// stopped (SIGTERM) or crashed (SIGKILL) arrive after it restarts, in order
// and once; the broker survives a PostgreSQL restart (reconnect, re-LISTEN,
// read what it missed). The gateways and their clients stay up throughout.

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Cluster, withLogs, sleep, SLOW } = require('./lib/harness');
const { connect, closeAll, DEFAULT_WAIT } = require('./lib/clients');

const T = { timeout: 120000 * SLOW };
const RECOVERY_WAIT = 30000 * SLOW;
const nonce = () => crypto.randomBytes(6).toString('hex');

// PostgreSQL restarts drop pooled connections; retry a statement a few times.
async function insertRetrying(c, row) {
  let last;
  for (let i = 0; i < 20; i++) {
    try { return await c.insert(row); } catch (e) { last = e; await sleep(250); }
  }
  throw last;
}

describe('restart', () => {
  let c;
  before(async () => { c = await Cluster.start({ name: 'restart', gateways: 2 }); });
  afterEach(() => closeAll());
  after(async () => { await closeAll(); if (c) await c.stop(); });

  for (const signal of ['SIGTERM', 'SIGKILL']) {
    test(`rows inserted while the broker is stopped (${signal}) arrive after it restarts`, T, withLogs(async () => {
      const a = await connect(c.gateways[0].url, { token: c.token(42), label: 'u42@gw0' });
      const b = await connect(c.gateways[1].url, { token: c.token(42), label: 'u42@gw1' });
      const n = nonce();
      await c.insert({ room: 'user_42', event: 'before', payload: { nonce: n } });
      for (const cl of [a, b]) await cl.waitFor((e) => e.event === 'before' && e.args[0]?.nonce === n, DEFAULT_WAIT, 'row before the stop');

      await c.stopBroker(signal);
      for (let i = 1; i <= 5; i++) await c.insert({ room: 'user_42', event: 'while_down', payload: { i, nonce: n } });
      await c.insert({ room: 'all', event: 'while_down_all', payload: { nonce: n } });
      await c.startBroker();

      const mine = (e) => e.event === 'while_down' && e.args[0]?.nonce === n;
      for (const cl of [a, b]) {
        const got = await cl.waitForCount(mine, 5, RECOVERY_WAIT, 'rows inserted while the broker was down');
        assert.deepEqual(got.map((e) => e.args[0].i), [1, 2, 3, 4, 5], `${cl.label}: order`);
        await cl.waitFor((e) => e.event === 'while_down_all' && e.args[0]?.nonce === n, RECOVERY_WAIT, 'broadcast row inserted while down');
      }
      // The live path works again after the restart.
      await c.insert({ room: 'user_42', event: 'after', payload: { nonce: n } });
      for (const cl of [a, b]) await cl.waitFor((e) => e.event === 'after' && e.args[0]?.nonce === n, DEFAULT_WAIT, 'row after the restart');
      await sleep(300);
      for (const cl of [a, b]) {
        assert.equal(cl.events.filter(mine).length, 5, `${cl.label}: duplicates after restart`);
        assert.equal(cl.events.filter((e) => e.event === 'before' && e.args[0]?.nonce === n).length, 1, `${cl.label}: a row delivered before the stop was delivered again`);
      }
    }));
  }

  test('the broker reconnects after a PostgreSQL restart and delivers what was inserted meanwhile', T, withLogs(async () => {
    const a = await connect(c.gateways[0].url, { token: c.token(42), label: 'u42@gw0' });
    const n = nonce();
    await c.restartPostgres('SIGINT');
    // Inserted as soon as PostgreSQL is back, likely before the broker has reconnected.
    await insertRetrying(c, { room: 'user_42', event: 'after_pg_restart', payload: { k: 1, nonce: n } });
    await a.waitFor((e) => e.event === 'after_pg_restart' && e.args[0]?.k === 1 && e.args[0]?.nonce === n, RECOVERY_WAIT, 'row inserted right after the PostgreSQL restart');
    // And the doorbell works again (re-LISTENed): a later row arrives too.
    await insertRetrying(c, { room: 'user_42', event: 'after_pg_restart', payload: { k: 2, nonce: n } });
    await a.waitFor((e) => e.event === 'after_pg_restart' && e.args[0]?.k === 2 && e.args[0]?.nonce === n, DEFAULT_WAIT, 'second row after the PostgreSQL restart');
    assert.ok(c.broker.alive, 'the broker must survive a PostgreSQL restart');
  }));
});
