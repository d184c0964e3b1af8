'use strict';
// The notification center's demo page in a real browser (issue 5): headless
// Chromium, two tabs of user 42 on two different gateways (both serving the
// page with --static-dir), the official client with default options.
// Checked: the unread snapshot on load (exact count, newest first, bounded
// list), a row inserted with SQL showing up in both tabs (time measured and
// printed), the badge, "mark as read" and "mark all read" in one tab updating
// the other, and that a tab cannot mark another user's row. Screenshots go
// to tests/out/demo/*.png.
//
// The unread snapshot, `mark_read` and `mark_all_read` go through the
// broker's upstream RPC (proto/PROTOCOL.md, ops `unread` and `mark_read`).

const { describe, test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Cluster, withLogs, SLOW } = require('./lib/harness');
const { launch, screenshot } = require('./lib/browser');

const T = { timeout: 120000 * SLOW };
const WAIT = 10000 * SLOW;          // page load, connect, upgrade, snapshot
const BOUND = 5000 * SLOW;          // a change must reach the other tab within this
const OUT = 'demo';
const nonce = () => crypto.randomBytes(5).toString('hex');

describe('demo page (two tabs of user 42 on two gateways)', () => {
  let c;
  let br;
  let open = [];

  before(async () => {
    c = await Cluster.start({ name: 'demo', gateways: 2, web: true });
    br = await launch();
  });
  afterEach(async () => {
    for (const tab of open) await tab.page.close().catch(() => {});
    open = [];
  });
  after(async () => {
    if (br) await br.close();
    if (c) await c.stop();
  });

  // Opens the page on gateway gi as user `user`; resolves once the socket is
  // connected and upgraded to WebSocket.
  async function openTab(gi, label, user = 42) {
    const tab = await br.openPage(label);
    open.push(tab);
    const { page } = tab;
    await page.goto(`${c.gateways[gi].url}/?token=${encodeURIComponent(c.token(user))}`, { timeout: WAIT });
    await page.waitForFunction(() => window.belfrySocket && window.belfrySocket.connected, null, { timeout: WAIT });
    await page.waitForFunction(() => window.belfrySocket.io.engine.transport.name === 'websocket', null, { timeout: WAIT });
    return tab;
  }

  // Resolves once the page applied at least n unread snapshots.
  const waitSnapshot = (tab, n = 1, ms = WAIT) => tab.page.waitForFunction(
    (k) => Number(document.body.dataset.snapshots) >= k, n, { timeout: ms });
  const badge = (tab) => tab.page.getAttribute('#badge', 'data-count').then(Number);
  const waitBadge = (tab, n, ms = BOUND) => tab.page.waitForFunction(
    (k) => document.getElementById('badge').dataset.count === String(k), n, { timeout: ms });
  // The ids of the stored items shown, top to bottom.
  const shownIds = (tab) => tab.page.$$eval('#list li:not([data-live])', (lis) => lis.map((li) => Number(li.dataset.id)));
  const waitItem = (tab, id, present, ms = BOUND) => tab.page.waitForFunction(
    ([i, want]) => !!document.querySelector(`#list li[data-id="${i}"]`) === want, [id, present], { timeout: ms });

  // Every unread row of every user becomes read: each test starts empty.
  const readEverything = () => c.query('UPDATE notifications SET read_at = now() WHERE read_at IS NULL');
  const unreadInDb = (room) => c.query('SELECT count(*)::int AS n FROM notifications WHERE room = $1 AND read_at IS NULL', [room])
    .then((r) => r.rows[0].n);

  // On failure: a screenshot of every open tab and what each page said.
  const guarded = (name, fn) => withLogs(async (t) => {
    try {
      await fn(t);
    } catch (e) {
      for (const tab of open) {
        await screenshot(tab.page, OUT, `FAILED-${name}-${tab.label}`).catch(() => {});
        const shown = await tab.page.evaluate(() => ({
          status: document.getElementById('status').textContent,
          problem: document.getElementById('problem').textContent,
          badge: document.getElementById('badge').dataset.count,
          snapshots: document.body.dataset.snapshots,
          items: [...document.querySelectorAll('#list li')].map((li) => li.dataset.id),
        })).catch((x) => String(x));
        console.error(`--- tab ${tab.label} shows ${JSON.stringify(shown)}\n${tab.describe()}`);
      }
      throw e;
    }
  });

  test('the unread snapshot on load: exact count, newest first, read rows and other users left out', T, guarded('snapshot', async () => {
    await readEverything();
    const n = nonce();
    const ids = [];
    for (let i = 1; i <= 5; i++) ids.push(await c.insert({ room: 'user_42', event: 'response', payload: { meta: `pre-existing ${i} ${n}` } }));
    const read = await c.insert({ room: 'user_42', event: 'response', payload: { meta: `already read ${n}` } });
    await c.query('UPDATE notifications SET read_at = now() WHERE id = $1', [read]);
    await c.insert({ room: 'user_43', event: 'response', payload: { meta: `for user 43 ${n}` } });

    const a = await openTab(0, 'snapshot-gw0');
    await waitSnapshot(a);
    assert.equal(await badge(a), 5);
    assert.deepEqual(await shownIds(a), [...ids].reverse(), 'the five unread rows, newest first');
    assert.equal(await a.page.locator('#list li', { hasText: `already read ${n}` }).count(), 0);
    assert.equal(await a.page.locator('#list li', { hasText: `for user 43 ${n}` }).count(), 0);
    assert.equal(await a.page.isHidden('#empty'), true);
    await screenshot(a.page, OUT, 'snapshot-5');

    // 30 unread: the count is exact, the list is the newest N (N < 30).
    for (let i = 6; i <= 30; i++) ids.push(await c.insert({ room: 'user_42', event: 'response', payload: { meta: `pre-existing ${i} ${n}` } }));
    const b = await openTab(1, 'snapshot-gw1');
    await waitSnapshot(b);
    assert.equal(await badge(b), 30);
    const shown = await shownIds(b);
    assert.ok(shown.length > 0 && shown.length < 30, `a bounded list (got ${shown.length} items)`);
    assert.deepEqual(shown, [...ids].reverse().slice(0, shown.length), 'the newest rows, newest first');
    await screenshot(b.page, OUT, 'snapshot-30');
  }));

  test('a row inserted with SQL appears in both tabs (two gateways) and the badges count it', T, guarded('live', async (t) => {
    await readEverything();
    const a = await openTab(0, 'live-gw0');
    const b = await openTab(1, 'live-gw1');
    // With the broker serving snapshots, let them land first (a snapshot
    // replaces the list); without, this only costs the wait.
    await Promise.all([waitSnapshot(a, 1, 3000), waitSnapshot(b, 1, 3000)]).catch(() => {});
    assert.equal(await badge(a), 0);
    assert.equal(await badge(b), 0);

    const text = `Live ${nonce()}`;
    const t0 = Date.now();
    const id = await c.insert({ room: 'user_42', event: 'response', payload: { meta: text, notif_count: 1 } });
    const seen = await Promise.all([a, b].map((tab) => tab.page.locator('#list li', { hasText: text }).first()
      .waitFor({ timeout: BOUND }).then(() => Date.now() - t0)));
    const ms = Math.max(...seen);
    console.log(`demo: row ${id} visible in both tabs ${ms} ms after the INSERT returned (gw0 ${seen[0]} ms, gw1 ${seen[1]} ms)`);
    t.diagnostic(`row visible in both tabs after ${ms} ms (bound ${BOUND} ms, target 1000 ms)`);
    await Promise.all([waitBadge(a, 1), waitBadge(b, 1)]);
    for (const tab of [a, b]) assert.equal(await tab.page.locator('#list li', { hasText: text }).count(), 1, `${tab.label}: shown once`);
    await screenshot(a.page, OUT, 'live-tab-gw0');
    await screenshot(b.page, OUT, 'live-tab-gw1');
  }));

  test('a live row gets its id from the snapshot, so it can be marked read', T, guarded('live-id', async () => {
    await readEverything();
    const a = await openTab(0, 'liveid-gw0');
    const text = `Live with id ${nonce()}`;
    const id = await c.insert({ room: 'user_42', event: 'response', payload: { meta: text } });
    await waitItem(a, id, true);
    assert.equal(await a.page.locator('#list li', { hasText: text }).count(), 1, 'the live item was replaced, not doubled');
    assert.equal(await badge(a), 1);
  }));

  test('"mark as read" in one tab removes the item and updates the count in the other', T, guarded('mark-read', async () => {
    await readEverything();
    const n = nonce();
    const old = await c.insert({ room: 'user_42', event: 'response', payload: { meta: `older ${n}` } });
    const a = await openTab(0, 'mark-gw0');
    const b = await openTab(1, 'mark-gw1');
    await Promise.all([waitItem(a, old, true, WAIT), waitItem(b, old, true, WAIT)]);
    const id = await c.insert({ room: 'user_42', event: 'response', payload: { meta: `to be read ${n}` } });
    await Promise.all([waitItem(a, id, true), waitItem(b, id, true)]);
    await Promise.all([waitBadge(a, 2), waitBadge(b, 2)]);
    await screenshot(b.page, OUT, 'mark-read-before');

    const t0 = Date.now();
    await a.page.click(`#list li[data-id="${id}"] .mark-read`);
    await Promise.all([waitItem(a, id, false), waitItem(b, id, false)]);
    console.log(`demo: mark as read in tab gw0 reached tab gw1 in ${Date.now() - t0} ms`);
    await Promise.all([waitBadge(a, 1), waitBadge(b, 1)]);
    assert.deepEqual(await shownIds(b), [old], 'only the other row is left');
    assert.equal(await unreadInDb('user_42'), 1);
    const r = await c.query('SELECT read_at IS NOT NULL AS read FROM notifications WHERE id = $1', [id]);
    assert.equal(r.rows[0].read, true, 'the row is read in PostgreSQL');
    assert.equal(await a.page.isHidden('#problem'), true, 'no error shown');
    await screenshot(b.page, OUT, 'mark-read-after-other-tab');

    // A forged mark_read of another user's row leaves it unread.
    const theirs = await c.insert({ room: 'user_43', event: 'response', payload: { meta: `user 43's ${n}` } });
    const ack = await a.page.evaluate((i) => window.belfrySocket.timeout(5000).emitWithAck('mark_read', i), theirs);
    assert.ok(ack && (ack.error || typeof ack.unread === 'number'), `an answer: ${JSON.stringify(ack)}`);
    assert.equal(await unreadInDb('user_43'), 1, 'user 43\'s row is still unread');
    assert.equal(await badge(b), 1);
  }));

  test('"mark all read" in one tab empties the list and the badge in the other', T, guarded('mark-all', async () => {
    await readEverything();
    const n = nonce();
    for (let i = 0; i < 3; i++) await c.insert({ room: 'user_42', event: 'response', payload: { meta: `row ${i} ${n}` } });
    const a = await openTab(0, 'all-gw0');
    const b = await openTab(1, 'all-gw1');
    await Promise.all([waitBadge(a, 3, WAIT), waitBadge(b, 3, WAIT)]);
    await screenshot(a.page, OUT, 'mark-all-before');

    await b.page.click('#mark-all');
    await Promise.all([a, b].map((tab) => tab.page.waitForFunction(
      () => document.querySelectorAll('#list li').length === 0, null, { timeout: BOUND })));
    await Promise.all([waitBadge(a, 0), waitBadge(b, 0)]);
    assert.equal(await unreadInDb('user_42'), 0);
    assert.equal(await a.page.isVisible('#empty'), true, 'the empty state is shown');
    await screenshot(a.page, OUT, 'mark-all-after-other-tab');

    // Still live afterwards.
    const id = await c.insert({ room: 'user_42', event: 'response', payload: { meta: `after ${n}` } });
    await Promise.all([waitItem(a, id, true), waitItem(b, id, true)]);
    await Promise.all([waitBadge(a, 1), waitBadge(b, 1)]);
  }));
});
