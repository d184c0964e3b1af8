'use strict';
// tests/integration/lib/browser.js — headless Chromium (Debian `chromium`,
// driven by npm playwright-core) for the browser tests.
//
// Design: launch() starts one Chromium with a fresh profile folder (removed
// by close()) and the flags it needs here as root: no sandbox, no GPU, and
// none of its background networking (component updates, sync, QUIC), whose
// connections would otherwise crowd the loopback tests. Each page opened
// with openPage() records its console messages, uncaught errors, HTTP
// requests and WebSockets, so a test can assert on the transports the
// official client used and show what the page said when something fails.
// Screenshots go to tests/out/<folder>/<name>.png.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ROOT } = require('./harness');

const CHROMIUM = process.env.BELFRY_CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

let chromium = null;
function playwright() {
  if (!chromium) ({ chromium } = require('playwright-core'));
  return chromium;
}

// Starts Chromium; resolves with {context, openPage(label), close()}.
async function launch() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian chromium (bash deploy/install-deps.sh)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'belfry-chromium-'));
  let context;
  try {
    context = await playwright().launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 900, height: 600 },
      timeout: 60000,
    });
  } catch (e) {
    fs.rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const pages = [];
  return {
    context,
    async openPage(label) {
      const page = pages.length === 0 && context.pages().length === 1 ? context.pages()[0] : await context.newPage();
      const rec = { label, page, console: [], errors: [], requests: [], websockets: [] };
      page.on('console', (m) => rec.console.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => rec.errors.push(String(e && e.stack ? e.stack : e)));
      page.on('request', (r) => rec.requests.push(`${r.method()} ${r.url()}`));
      page.on('websocket', (ws) => rec.websockets.push(ws.url()));
      rec.describe = () => `--- page ${label}: console:\n  ${rec.console.join('\n  ') || '(none)'}\n` +
        `--- page errors:\n  ${rec.errors.join('\n  ') || '(none)'}\n` +
        `--- requests (last 20):\n  ${rec.requests.slice(-20).join('\n  ') || '(none)'}\n` +
        `--- websockets:\n  ${rec.websockets.join('\n  ') || '(none)'}`;
      pages.push(rec);
      return rec;
    },
    describe() { return pages.map((p) => p.describe()).join('\n'); },
    async close() {
      try { await context.close(); } catch (_) { /* already gone */ }
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

// Saves a PNG of the page as tests/out/<folder>/<name>.png; returns its path.
async function screenshot(page, folder, name) {
  const dir = path.join(ROOT, 'tests', 'out', folder);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

module.exports = { launch, screenshot, CHROMIUM };
