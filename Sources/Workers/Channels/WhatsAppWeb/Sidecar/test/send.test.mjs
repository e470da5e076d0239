import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SEND_TIMEOUT_MS } from '../sidecar.mjs';
import { boom } from './fake-baileys.mjs';
import { settle, startSidecar } from './harness.mjs';

const CHAT = '15550002222@s.whatsapp.net';
const send = (id, extra = {}) => ({ type: 'send', id, jid: CHAT, text: 'hello', ...extra });

test('a send that succeeds is answered with sent and the WhatsApp message id', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  await h.send(send('d1'));
  assert.deepEqual(sock.sent, [{ jid: CHAT, content: { text: 'hello' }, options: {} }]);
  assert.deepEqual(h.last('sent'), { type: 'sent', id: 'd1', messageID: 'OWN1' });
});

test('a quoted send quotes the message by id', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  await h.send(send('d1', { quoted: 'M7' }));
  assert.deepEqual(sock.sent[0].options, {
    quoted: { key: { remoteJid: CHAT, id: 'M7', fromMe: false }, message: { conversation: '' } }
  });
});

test('a send while not connected fails at once, certainly not sent', async () => {
  const h = startSidecar();
  await h.send(send('d0'));
  const sock = await h.start(null);
  await h.send(send('d1'));
  sock.open();
  sock.close(428);
  await settle();
  await h.send(send('d2'));
  assert.deepEqual(h.ofType('send_failed'), [
    { type: 'send_failed', id: 'd0', uncertain: false, reason: 'not connected' },
    { type: 'send_failed', id: 'd1', uncertain: false, reason: 'not connected' },
    { type: 'send_failed', id: 'd2', uncertain: false, reason: 'not connected' }
  ]);
  assert.equal(sock.sent.length, 0);
});

test('a send the socket throws on is uncertain', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.sendImpl = () => { throw boom(408, 'Timed Out'); };
  await h.send(send('d1'));
  assert.deepEqual(h.last('send_failed'), { type: 'send_failed', id: 'd1', uncertain: true, reason: 'Timed Out' });
  assert.equal(h.ofType('sent').length, 0);
});

test('a send that never returns fails as uncertain after the send timeout, once', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  let finish;
  sock.sendImpl = () => new Promise((resolve) => { finish = resolve; });
  await h.send(send('d1'));
  h.clock.advance(SEND_TIMEOUT_MS - 1);
  assert.equal(h.ofType('send_failed').length, 0);
  h.clock.advance(1);
  assert.deepEqual(h.last('send_failed'), { type: 'send_failed', id: 'd1', uncertain: true, reason: 'timeout' });
  finish({ key: { id: 'LATE' } });
  await settle();
  assert.equal(h.ofType('sent').length, 0);
  assert.match(h.logs.at(-1), /after its timeout/);
});

test('a malformed send is refused without touching the socket', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  await h.send({ type: 'send', id: 'd1', jid: CHAT });
  await h.send({ type: 'send', jid: CHAT, text: 'no id' });
  assert.deepEqual(h.ofType('send_failed'), [
    { type: 'send_failed', id: 'd1', uncertain: false, reason: 'invalid send command' }
  ]);
  assert.equal(sock.sent.length, 0);
});

test('presence and read go to the socket; their errors are only logged', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  await h.send({ type: 'presence', jid: CHAT, state: 'composing' });
  await h.send({ type: 'read', jid: CHAT, ids: ['M1', 'M2'] });
  assert.deepEqual(sock.presences, [{ state: 'composing', jid: CHAT }]);
  assert.deepEqual(sock.reads, [[
    { remoteJid: CHAT, id: 'M1', fromMe: false }, { remoteJid: CHAT, id: 'M2', fromMe: false }
  ]]);
  const before = h.events.length;
  sock.sendPresenceUpdate = async () => { throw new Error('Connection Closed'); };
  await h.send({ type: 'presence', jid: CHAT, state: 'paused' });
  assert.match(h.logs.at(-1), /presence failed: Connection Closed/);
  assert.equal(h.events.length, before, 'no event for a presence error');
  assert.deepEqual(h.exits, []);
});

test('stale: no event for staleAfterMs after a send closes the socket and reports it', async () => {
  const h = startSidecar();
  const sock = await h.startOpen(null, { staleAfterMs: 30000 });
  await h.send(send('d1'));
  h.clock.advance(10000);
  await h.send(send('d2')); // a later send does not move the clock of the first
  h.clock.advance(19999);
  assert.equal(h.ofType('stale').length, 0);
  h.clock.advance(1);
  assert.deepEqual(h.last('stale'), { type: 'stale', sinceMs: 30000 });
  assert.deepEqual(h.last('disconnected'), {
    type: 'disconnected', code: 0, reason: 'stale', message: 'no event from WhatsApp for 30000 ms after a send'
  });
  assert.equal(sock.closed, true);
  assert.equal(h.ofType('disconnected').length, 1, 'the socket\'s own close is not reported again');
  assert.equal(h.baileys.sockets.length, 1, 'no reconnect');
  await h.send(send('d3'));
  assert.deepEqual(h.last('send_failed'), { type: 'send_failed', id: 'd3', uncertain: false, reason: 'not connected' });
});

test('stale uses the default of 120 s when start gives none', async () => {
  const h = startSidecar();
  await h.startOpen(null, { staleAfterMs: undefined });
  await h.send(send('d1'));
  h.clock.advance(119999);
  assert.equal(h.ofType('stale').length, 0);
  h.clock.advance(1);
  assert.equal(h.ofType('stale').length, 1);
});

const receipt = { key: { remoteJid: CHAT, id: 'OWN1', fromMe: true }, update: { status: 3 } };
const inboundMessage = { key: { remoteJid: CHAT, id: 'M1' }, message: { conversation: 'x' } };
for (const [name, inbound] of [
  ['a receipt', (sock) => sock.update([receipt])],
  ['a message', (sock) => sock.upsert('notify', [inboundMessage])],
  ['a presence', (sock) => sock.ev.emit('presence.update', { id: CHAT, presences: {} })],
  ['a group receipt', (sock) => sock.ev.emit('message-receipt.update', [])],
  ['a connection update', (sock) => sock.ev.emit('connection.update', { receivedPendingNotifications: true })]
]) {
  test(`stale: ${name} after the send keeps the socket`, async () => {
    const h = startSidecar();
    const sock = await h.startOpen();
    await h.send(send('d1'));
    h.clock.advance(60000);
    inbound(sock);
    await settle();
    h.clock.advance(120000);
    assert.equal(h.ofType('stale').length, 0);
    assert.equal(sock.closed, false);
  });
}

test('stale: the echo of our own send is not a sign of life, creds updates neither', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  await h.send(send('d1'));
  sock.upsert('append', [{ key: { remoteJid: CHAT, fromMe: true, id: 'OWN1' }, message: { conversation: 'hello' } }]);
  sock.ev.emit('creds.update', { nextPreKeyId: 40 });
  await settle();
  h.clock.advance(120000);
  assert.equal(h.ofType('stale').length, 1);
});

test('stale: events before the send succeeded do not count', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  let finish;
  sock.sendImpl = () => new Promise((resolve) => { finish = resolve; });
  await h.send(send('d1'));
  sock.update([{ key: { remoteJid: CHAT, id: 'X', fromMe: true }, update: { status: 4 } }]);
  finish({ key: { id: 'OWN9' } });
  await settle();
  h.clock.advance(120000);
  assert.equal(h.ofType('stale').length, 1);
});

test('stale: a close before the deadline cancels the check', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  await h.send(send('d1'));
  sock.close(428);
  await settle();
  h.clock.advance(200000);
  assert.equal(h.ofType('stale').length, 0);
  assert.equal(h.clock.pending(), 0);
});

test('stale: after a reconnect the check starts afresh', async () => {
  const h = startSidecar();
  await h.startOpen();
  await h.send(send('d1'));
  h.clock.advance(120000);
  assert.equal(h.ofType('stale').length, 1);
  await h.send({ type: 'connect' });
  h.sock.open();
  await settle();
  await h.ackAll();
  h.clock.advance(500000);
  assert.equal(h.ofType('stale').length, 1, 'no send yet on the new socket');
  await h.send(send('d2'));
  h.clock.advance(120000);
  assert.equal(h.ofType('stale').length, 2);
});
