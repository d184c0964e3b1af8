'use strict';
// Completeness and order: a 1,000-row single-transaction INSERT arrives whole
// and in id order on both gateways; a row whose transaction took a lower id
// but committed after a later row is still delivered (the snapshot cursor,
// not `id > last_id`).

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Cluster, withLogs, sleep, SLOW } = require('./lib/harness');
const { connect, closeAll, DEFAULT_WAIT } = require('./lib/clients');

const T = { timeout: 120000 * SLOW };
const nonce = () => crypto.randomBytes(6).toString('hex');

describe('ordering', () => {
  let c;
  before(async () => { c = await Cluster.start({ name: 'ordering', gateways: 2 }); });
  afterEach(() => closeAll());
  after(async () => { await closeAll(); if (c) await c.stop(); });

  test('1,000 rows inserted in one transaction arrive complete and in order on both gateways', T, withLogs(async () => {
    const a = await connect(c.gateways[0].url, { token: c.token(42), label: 'u42@gw0' });
    const b = await connect(c.gateways[1].url, { token: c.token(42), label: 'u42@gw1' });
    const n = nonce();
    await c.query(`INSERT INTO notifications (room, event, payload)
                   SELECT 'user_42', 'bulk', jsonb_build_object('i', g, 'nonce', $1::text)
                     FROM generate_series(1, 1000) AS g ORDER BY g`, [n]);
    const ids = (await c.query(`SELECT (payload->>'i')::int AS i FROM notifications WHERE payload->>'nonce' = $1 ORDER BY id`, [n])).rows.map((r) => r.i);
    assert.equal(ids.length, 1000);
    const mine = (e) => e.event === 'bulk' && e.args[0]?.nonce === n;
    for (const cl of [a, b]) {
      const got = await cl.waitForCount(mine, 1000, 30000 * SLOW, 'bulk rows');
      const seq = got.map((e) => e.args[0].i);
      assert.deepEqual(seq, ids, `${cl.label}: rows out of id order or missing`);
    }
    await sleep(300);
    for (const cl of [a, b]) assert.equal(cl.events.filter(mine).length, 1000, `${cl.label}: duplicates`);
  }));

  test('a row committed after a row with a higher id is not skipped', T, withLogs(async () => {
    const a = await connect(c.gateways[0].url, { token: c.token(42), label: 'u42@gw0' });
    const b = await connect(c.gateways[1].url, { token: c.token(42), label: 'u42@gw1' });
    const n = nonce();
    const t1 = await c.client();
    const t2 = await c.client();
    try {
      await t1.query('BEGIN');
      const id1 = Number((await t1.query(`INSERT INTO notifications (room, event, payload) VALUES ('user_42', 'late', $1) RETURNING id`,
        [JSON.stringify({ tx: 'T1', nonce: n })])).rows[0].id);
      await t2.query('BEGIN');
      const id2 = Number((await t2.query(`INSERT INTO notifications (room, event, payload) VALUES ('user_42', 'late', $1) RETURNING id`,
        [JSON.stringify({ tx: 'T2', nonce: n })])).rows[0].id);
      assert.ok(id1 < id2, `expected T1's id ${id1} < T2's id ${id2}`);
      await t2.query('COMMIT');
      // T2 (higher id) is delivered while T1 is still open: the broker's
      // cursor has now moved past T2's id.
      for (const cl of [a, b]) {
        await cl.waitFor((e) => e.event === 'late' && e.args[0]?.nonce === n && e.args[0]?.tx === 'T2', DEFAULT_WAIT, 'T2 row');
      }
      await t1.query('COMMIT');
      for (const cl of [a, b]) {
        await cl.waitFor((e) => e.event === 'late' && e.args[0]?.nonce === n && e.args[0]?.tx === 'T1', DEFAULT_WAIT,
          'T1 row (lower id, committed later)');
      }
      await sleep(300);
      for (const cl of [a, b]) {
        assert.deepEqual(cl.events.filter((e) => e.args[0]?.nonce === n).map((e) => e.args[0].tx), ['T2', 'T1'], `${cl.label}: each row once, in commit order`);
      }
    } finally {
      await t1.query('ROLLBACK').catch(() => {});
      await t2.query('ROLLBACK').catch(() => {});
      await t1.end(); await t2.end();
    }
  }));

  test('interleaved transactions of many rows all arrive, none twice', T, withLogs(async () => {
    const a = await connect(c.gateways[1].url, { token: c.token(42), label: 'u42@gw1' });
    const n = nonce();
    const txs = await Promise.all([0, 1, 2, 3].map(() => c.client()));
    try {
      for (const t of txs) await t.query('BEGIN');
      // Round-robin inserts so ids interleave across the four transactions.
      for (let r = 0; r < 25; r++) {
        for (let k = 0; k < txs.length; k++) {
          await txs[k].query(`INSERT INTO notifications (room, event, payload) VALUES ('user_42', 'inter', $1)`,
            [JSON.stringify({ tx: k, r, nonce: n })]);
        }
      }
      // Commit in reverse order, letting deliveries happen in between.
      for (let k = txs.length - 1; k >= 0; k--) {
        await txs[k].query('COMMIT');
        await a.waitForCount((e) => e.event === 'inter' && e.args[0]?.nonce === n && e.args[0]?.tx === k, 25, DEFAULT_WAIT, `rows of tx ${k}`);
      }
      await sleep(300);
      const got = a.events.filter((e) => e.event === 'inter' && e.args[0]?.nonce === n);
      assert.equal(got.length, 100, 'each row exactly once');
      for (let k = 0; k < txs.length; k++) {
        assert.deepEqual(got.filter((e) => e.args[0].tx === k).map((e) => e.args[0].r), [...Array(25).keys()], `tx ${k} rows in id order`);
      }
    } finally {
      for (const t of txs) { await t.query('ROLLBACK').catch(() => {}); await t.end(); }
    }
  }));
});
