'use strict';
// The official socket.io client in a real browser (issue 3): headless
// Chromium loads the demo page from a gateway (--static-dir), the client
// connects with its default options (HTTP long-polling first, then the
// upgrade to WebSocket), and a row inserted in PostgreSQL for user_42 shows
// up on the page. Screenshot: tests/out/browser/notification.png.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { Cluster, withLogs, SLOW } = require('./lib/harness');
const { launch, screenshot } = require('./lib/browser');

const T = { timeout: 120000 * SLOW };
const WAIT = 10000 * SLOW;          // connect, upgrade
const DELIVERY_BOUND = 5000 * SLOW; // a row must be on the page within this

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }));
    }).on('error', reject);
  });
}

describe('browser', () => {
  let c;
  let br;
  before(async () => {
    c = await Cluster.start({ name: 'browser', gateways: 1, web: true });
    br = await launch();
  });
  after(async () => {
    if (br) await br.close();
    if (c) await c.stop();
  });

  test('the gateway serves the demo page and the client bundle', T, withLogs(async () => {
    const g = c.gateways[0];
    const index = await get(`${g.url}/`);
    assert.equal(index.status, 200);
    assert.match(index.type, /^text\/html/);
    assert.match(index.body, /<script src="socket\.io\.min\.js"><\/script>/);
    const js = await get(`${g.url}/socket.io.min.js`);
    assert.equal(js.status, 200);
    assert.match(js.type, /javascript/);
    assert.ok(js.body.length > 10000, 'the client bundle is served whole');
    assert.equal((await get(`${g.url}/../etc/passwd`)).status, 404);
    assert.equal((await get(`${g.url}/nope.html`)).status, 404);
  }));

  test('default client options: polling, upgrade to websocket, a row for user_42 appears', T, withLogs(async () => {
    const g = c.gateways[0];
    const p = await br.openPage('u42');
    const { page } = p;
    try {
      await page.goto(`${g.url}/?token=${encodeURIComponent(c.token(42))}`, { timeout: WAIT });
      await page.waitForFunction(() => window.belfrySocket && window.belfrySocket.connected, null, { timeout: WAIT });
      assert.match(await page.textContent('#status'), /^connected/);

      // The client started on long-polling (its first request is a polling
      // handshake without sid) and then upgraded on a WebSocket that carries
      // the same session id.
      const polling = p.requests.filter((r) => /\/socket\.io\/\?.*transport=polling/.test(r));
      assert.ok(polling.length > 0, `no long-polling request:\n${p.describe()}`);
      assert.ok(!/[?&]sid=/.test(polling[0]), `first polling request is the handshake: ${polling[0]}`);
      await page.waitForFunction(() => window.belfrySocket.io.engine.transport.name === 'websocket', null, { timeout: WAIT });
      const sid = await page.evaluate(() => window.belfrySocket.io.engine.id);
      const ws = p.websockets.filter((u) => /transport=websocket/.test(u));
      assert.equal(ws.length, 1, `one WebSocket:\n${p.describe()}`);
      assert.ok(ws[0].includes(`sid=${encodeURIComponent(sid)}`), `the WebSocket upgrades session ${sid}: ${ws[0]}`);
      await page.waitForFunction(() => document.getElementById('status').dataset.transport === 'websocket', null, { timeout: WAIT });

      // Give the unread snapshot on connect a moment (when the broker
      // serves it), so it cannot land after the live row.
      await page.waitForFunction(() => document.body.dataset.snapshots !== '0', null, { timeout: 2000 }).catch(() => {});

      const nonce = crypto.randomBytes(6).toString('hex');
      const text = `Browser test ${nonce}`;
      const t0 = Date.now();
      await c.insert({ room: 'user_42', event: 'response', payload: { meta: text, notif_count: 1 } });
      await page.locator('#list li', { hasText: text }).first().waitFor({ timeout: DELIVERY_BOUND });
      const ms = Date.now() - t0;
      console.log(`browser: row visible on the page ${ms} ms after the INSERT returned`);
      assert.equal(await page.locator('#list li', { hasText: text }).count(), 1, 'shown once');
      assert.ok(Number(await page.getAttribute('#badge', 'data-count')) >= 1, 'the badge counts it');

      // Another user's row never shows up here (checked after a later row of
      // our own arrived, same broker stream).
      await c.insert({ room: 'user_43', event: 'response', payload: { meta: `not for 42 ${nonce}` } });
      await c.insert({ room: 'user_42', event: 'response', payload: { meta: `sentinel ${nonce}` } });
      await page.locator('#list li', { hasText: `sentinel ${nonce}` }).first().waitFor({ timeout: DELIVERY_BOUND });
      assert.equal(await page.locator('#list li', { hasText: `not for 42 ${nonce}` }).count(), 0);

      // Still on the WebSocket, and the page threw nothing.
      assert.equal(await page.evaluate(() => window.belfrySocket.io.engine.transport.name), 'websocket');
      assert.deepEqual(p.errors, [], `page errors:\n${p.describe()}`);
      await screenshot(page, 'browser', 'notification');
    } catch (e) {
      await screenshot(page, 'browser', 'failure').catch(() => {});
      console.error(p.describe());
      throw e;
    } finally {
      await page.close();
    }
  }));

  test('a bad token is refused and the page says so', T, withLogs(async () => {
    const g = c.gateways[0];
    const p = await br.openPage('bad-token');
    const { page } = p;
    try {
      await page.goto(`${g.url}/?token=not-a-jwt`, { timeout: WAIT });
      await page.waitForFunction(() => /^refused: /.test(document.getElementById('status').textContent), null, { timeout: WAIT });
      assert.equal(await page.evaluate(() => window.belfrySocket.connected), false);
      await screenshot(page, 'browser', 'refused');
    } finally {
      await page.close();
    }
  }));
});
