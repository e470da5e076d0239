import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LINE_BYTES, createLineReader } from '../sidecar.mjs';
import { settle, startSidecar, until } from './harness.mjs';

test('writes a ready line first, with the Baileys and Node versions', async () => {
  const h = startSidecar({ version: '6.7.23' });
  await until(() => h.events.length > 0);
  assert.deepEqual(h.events[0], { type: 'ready', version: '6.7.23', node: process.version });
  assert.equal(h.rawLines[0], JSON.stringify(h.events[0]));
});

test('ready without a known version leaves the field out', async () => {
  const h = startSidecar({ version: null });
  await until(() => h.events.length > 0);
  assert.equal(h.events[0].type, 'ready');
  assert.equal('version' in h.events[0], false);
});

test('a line that is not JSON is logged (without its content) and the sidecar keeps running', async () => {
  const h = startSidecar();
  h.input.write('{"type":"start", secret-creds\n');
  await settle();
  assert.equal(h.logs.length, 1);
  assert.match(h.logs[0], /not JSON/);
  assert.doesNotMatch(h.logs[0], /secret-creds/);
  assert.deepEqual(h.exits, []);
  await h.start();
  assert.equal(h.baileys.sockets.length, 1);
});

test('lines that are not commands are logged and ignored', async () => {
  const h = startSidecar();
  await h.send([1, 2]);
  await h.send({ type: 'frobnicate' });
  h.input.write('\n\n');
  await settle();
  assert.equal(h.logs.length, 2);
  assert.match(h.logs[1], /unknown command: frobnicate/);
  assert.deepEqual(h.exits, []);
});

test('a line over 4 MiB is rejected and the next line is read', async () => {
  const h = startSidecar();
  const big = JSON.stringify({ type: 'pair', phone: '1'.repeat(MAX_LINE_BYTES) });
  // Streamed in pieces, as a pipe delivers it.
  for (let i = 0; i < big.length; i += 65536) h.input.write(big.slice(i, i + 65536));
  h.input.write('\n');
  await settle();
  assert.equal(h.logs.filter((l) => /over 4194304 bytes/.test(l)).length, 1);
  await h.start();
  assert.equal(h.baileys.sockets.length, 1);
  assert.deepEqual(h.exits, []);
});

test('the line reader keeps a line of exactly the limit and splits lines across chunks', () => {
  const lines = [];
  let rejected = 0;
  const reader = createLineReader({ maxBytes: 8, onLine: (l) => lines.push(l), onReject: () => rejected++ });
  reader.push('12345678\nab');
  reader.push(Buffer.from('c\n123456789'));
  reader.push('0\nok\n');
  assert.deepEqual(lines, ['12345678', 'abc', 'ok']);
  assert.equal(rejected, 1);
});

test('the line reader keeps a multi-byte character split across chunks', () => {
  const lines = [];
  const reader = createLineReader({ onLine: (l) => lines.push(l), onReject: () => {} });
  const bytes = Buffer.from('héllo\n');
  reader.push(bytes.subarray(0, 2));
  reader.push(bytes.subarray(2));
  assert.deepEqual(lines, ['héllo']);
});

test('stdin closing closes the socket without logging out and exits 0', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  h.input.end();
  await until(() => h.exits.length > 0);
  assert.deepEqual(h.exits, [0]);
  assert.equal(sock.closed, true);
  assert.equal(h.ofType('disconnected').length, 0);
});

test('stdin closing before start exits 0', async () => {
  const h = startSidecar();
  h.input.end();
  await until(() => h.exits.length > 0);
  assert.deepEqual(h.exits, [0]);
});

test('stop closes the socket (no logout) and exits 0', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  await h.send({ type: 'stop' });
  assert.deepEqual(h.exits, [0]);
  assert.equal(sock.closed, true);
  assert.equal(h.ofType('disconnected').length, 0, 'our own close is not reported');
});

test('stop waits for a pending auth batch, at most one second', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.ev.emit('creds.update', { nextPreKeyId: 31 });
  await settle();
  await h.send({ type: 'stop' });
  assert.deepEqual(h.exits, []);
  h.clock.advance(999);
  assert.deepEqual(h.exits, []);
  h.clock.advance(1);
  assert.deepEqual(h.exits, [0]);
});

test('stop exits as soon as the pending auth batch is committed', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.ev.emit('creds.update', { nextPreKeyId: 31 });
  await settle();
  await h.send({ type: 'stop' });
  assert.deepEqual(h.exits, []);
  await h.ackAll();
  assert.deepEqual(h.exits, [0]);
});

test('after exiting nothing more is written or handled', async () => {
  const h = startSidecar();
  await h.startOpen();
  await h.send({ type: 'stop' });
  const count = h.events.length;
  await h.send({ type: 'connect' });
  await h.send({ type: 'send', id: 'd1', jid: 'x@s.whatsapp.net', text: 'hi' });
  assert.equal(h.events.length, count);
  assert.equal(h.baileys.sockets.length, 1);
});

test('a command named like an Object property is unknown', async () => {
  const h = startSidecar();
  await h.send({ type: 'constructor' });
  await h.send({ type: 'toString' });
  assert.equal(h.logs.length, 2);
  assert.match(h.logs[0], /unknown command: constructor/);
});
