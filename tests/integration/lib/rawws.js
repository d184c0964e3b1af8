'use strict';
// tests/integration/lib/rawws.js — a raw WebSocket client over a plain TCP
// socket (node `net`) for the hostile-input tests: it builds every client frame
// itself (masked unless told otherwise, any opcode, RSV bits, FIN, payload
// length form), writes bytes whole, chopped into pieces or slowly, and parses
// what the server sends back into frames, so that a test can check the exact
// reaction to a protocol violation (echo, pong, close code, TCP end).
//
// Design: RawConn wraps one socket; every received byte goes into a buffer
// that is cut into server frames (which must be unmasked) as they complete;
// frames and the TCP end are queued and handed out in order by next(ms),
// which resolves with {type:'timeout'} instead of rejecting so tests can also
// assert that nothing came. rawHttp() sends a raw HTTP request and collects
// the whole response until the server closes or the timeout runs out.

const crypto = require('node:crypto');
const net = require('node:net');

const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

// frame(opcode, payload, opts) -> Buffer. opts: fin (true), rsv (0..7, the
// three RSV bits as a number, RSV1 = 4), mask (true), maskKey (4 bytes,
// random by default), len (override the length field value, e.g. to claim a
// huge payload), lenForm (7, 16 or 64: force this length encoding).
function frame(opcode, payload = Buffer.alloc(0), opts = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(String(payload), 'utf8');
  const fin = opts.fin ?? true;
  const rsv = opts.rsv ?? 0;
  const mask = opts.mask ?? true;
  const len = opts.len ?? data.length;
  const form = opts.lenForm || (len < 126 ? 7 : len < 65536 ? 16 : 64);
  const head = [((fin ? 1 : 0) << 7) | ((rsv & 7) << 4) | (opcode & 15)];
  const m = mask ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (form === 7) head.push(m | len);
  else if (form === 16) { head.push(m | 126); ext = Buffer.alloc(2); ext.writeUInt16BE(len); }
  else { head.push(m | 127); ext = Buffer.alloc(8); ext.writeBigUInt64BE(BigInt(len)); }
  if (!mask) return Buffer.concat([Buffer.from(head), ext, data]);
  const key = opts.maskKey || crypto.randomBytes(4);
  const body = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) body[i] = data[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

// Close frame payload: 2-byte code + reason (string or Buffer).
function closePayload(code, reason = '') {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.isBuffer(reason) ? reason : Buffer.from(reason, 'utf8')]);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class RawConn {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.queue = [];          // frames and {type:'end'} in arrival order
    this.waiters = [];
    this.ended = false;
    this.protocolProblems = []; // malformed server frames
    this.endedAt = null;
    sock.on('data', (d) => this._data(d));
    const onEnd = () => {
      if (this.ended) return;
      this.ended = true;
      this.endedAt = Date.now();
      this._push({ type: 'end' });
    };
    sock.on('end', onEnd);
    sock.on('close', onEnd);
    sock.on('error', () => { /* a reset also ends the stream */ });
  }

  _push(item) {
    const w = this.waiters.shift();
    if (w) w(item); else this.queue.push(item);
  }

  _data(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0];
      const b1 = this.buf[1];
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) { if (this.buf.length < 4) return; len = this.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (this.buf.length < 10) return; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      if (b1 & 0x80) this.protocolProblems.push('server frame is masked');
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      const f = { type: 'frame', fin: !!(b0 & 0x80), rsv: (b0 >> 4) & 7, opcode: b0 & 15, payload: Buffer.from(payload) };
      if (f.opcode === OP.CLOSE) {
        f.code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
        f.reason = payload.length > 2 ? payload.subarray(2).toString('utf8') : '';
      }
      this._push(f);
    }
  }

  // Resolves with the next frame, {type:'end'} or {type:'timeout'}.
  next(ms = 2000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => {
      const w = (item) => { clearTimeout(t); resolve(item); };
      const t = setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); resolve({ type: 'timeout' }); }, ms);
      this.waiters.push(w);
    });
  }

  write(buf) {
    return new Promise((resolve) => {
      if (this.sock.destroyed || !this.sock.writable) { resolve(false); return; }
      this.sock.write(buf, (err) => resolve(!err));
    });
  }

  // Writes buf in pieces of `size` bytes with `delayMs` between them.
  async writeChopped(buf, size = 1, delayMs = 0) {
    for (let i = 0; i < buf.length; i += size) {
      if (!(await this.write(buf.subarray(i, i + size)))) return false;
      if (delayMs) await sleep(delayMs);
    }
    return true;
  }

  send(opcode, payload, opts) { return this.write(frame(opcode, payload, opts)); }

  destroy() { this.sock.destroy(); }
}

function describe(item) {
  if (!item) return 'nothing';
  if (item.type !== 'frame') return item.type;
  const p = item.payload.length > 40 ? `${item.payload.subarray(0, 40).toString('hex')}... (${item.payload.length} bytes)` : item.payload.toString('hex');
  if (item.opcode === OP.CLOSE) return `close frame code=${item.code} reason=${JSON.stringify(item.reason)}`;
  return `frame opcode=${item.opcode} fin=${item.fin} rsv=${item.rsv} payload=${p}`;
}

// Opens a TCP connection and performs the WebSocket handshake on `path`.
// opts: host, localAddress, headers (extra, object), timeoutMs. Resolves with
// a RawConn (res = the response head) on 101; rejects otherwise.
function open(port, path, opts = {}) {
  const timeoutMs = opts.timeoutMs || 5000;
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: opts.host || '127.0.0.1', port, localAddress: opts.localAddress });
    sock.setNoDelay(true);
    let head = Buffer.alloc(0);
    const fail = (msg) => { clearTimeout(timer); sock.destroy(); reject(new Error(msg)); };
    const timer = setTimeout(() => fail(`no handshake answer within ${timeoutMs} ms; got ${JSON.stringify(head.toString('latin1'))}`), timeoutMs);
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const i = head.indexOf('\r\n\r\n');
      if (i < 0) return;
      clearTimeout(timer);
      sock.removeListener('data', onData);
      sock.removeListener('end', onEnd);
      const text = head.subarray(0, i).toString('latin1');
      if (!/^HTTP\/1\.1 101 /.test(text)) { sock.destroy(); const e = new Error(`handshake refused: ${text.split('\r\n')[0]}`); e.head = text; e.body = head.subarray(i + 4).toString('utf8'); reject(e); return; }
      const c = new RawConn(sock);
      c.res = text;
      const rest = head.subarray(i + 4);
      if (rest.length) c._data(rest);
      resolve(c);
    };
    const onEnd = () => fail(`connection closed during the handshake; got ${JSON.stringify(head.toString('latin1'))}`);
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.on('error', (e) => fail(`socket error: ${e.message}`));
    sock.on('connect', () => {
      const key = crypto.randomBytes(16).toString('base64');
      const extra = Object.entries(opts.headers || {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
    });
  });
}

// Sends raw bytes (string or Buffer, or an array of pieces written with
// delayMs between them) and collects everything until the server closes.
// Resolves {data (string), closed (bool), ms (time to close or timeout)}.
function rawHttp(port, pieces, { localAddress, delayMs = 0, timeoutMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect({ host: '127.0.0.1', port, localAddress });
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: data.toString('latin1'), closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (d) => { data = Buffer.concat([data, d]); });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.on('connect', async () => {
      const list = Array.isArray(pieces) ? pieces : [pieces];
      for (const p of list) {
        if (done || sock.destroyed) return;
        sock.write(p);
        if (delayMs) await sleep(delayMs);
      }
    });
  });
}

module.exports = { OP, frame, closePayload, open, rawHttp, describe, RawConn };
