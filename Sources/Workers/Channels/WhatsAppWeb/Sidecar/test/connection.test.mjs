import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reasonName } from '../sidecar.mjs';
import { DisconnectReason, boom } from './fake-baileys.mjs';
import { settle, startSidecar } from './harness.mjs';

test('QR codes: the first lives 60 s, the next ones 20 s', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  sock.qr('ref1,noise,identity,adv');
  sock.qr('ref2,noise,identity,adv');
  await settle();
  assert.deepEqual(h.ofType('qr'), [
    { type: 'qr', qr: 'ref1,noise,identity,adv', expiresInMs: 60000 },
    { type: 'qr', qr: 'ref2,noise,identity,adv', expiresInMs: 20000 }
  ]);
});

test('a new socket starts its QR clock again', async () => {
  const h = startSidecar();
  const first = await h.start(null);
  first.qr('a');
  first.close(408, 'QR refs attempts ended');
  await h.send({ type: 'connect' });
  h.sock.qr('b');
  await settle();
  assert.deepEqual(h.ofType('qr').map((e) => e.expiresInMs), [60000, 60000]);
});

test('open emits connected with the linked jid and name', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  sock.open({ id: '15550001111:3@s.whatsapp.net', name: 'Ada' });
  await settle();
  assert.deepEqual(h.last('connected'), { type: 'connected', jid: '15550001111:3@s.whatsapp.net', name: 'Ada' });
});

for (const [code, reason] of [
  [515, 'restartRequired'], [401, 'loggedOut'], [440, 'connectionReplaced'], [408, 'connectionLost'],
  [428, 'connectionClosed'], [403, 'forbidden'], [411, 'multideviceMismatch'], [500, 'badSession'],
  [503, 'unavailableService'], [405, 'unknown']
]) {
  test(`a close with ${code} is reported as ${reason}`, async () => {
    const h = startSidecar();
    const sock = await h.start(null);
    sock.close(code, `closed with ${code}`);
    await settle();
    assert.deepEqual(h.last('disconnected'), {
      type: 'disconnected', code, reason, message: `closed with ${code}`
    });
  });
}

test('a close without an error is code 0, unknown', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  sock.close(undefined);
  await settle();
  assert.deepEqual(h.last('disconnected'), { type: 'disconnected', code: 0, reason: 'unknown', message: '' });
});

test('reasonName skips the enum reverse mapping and takes the first name of a code', () => {
  assert.equal(DisconnectReason[408], 'timedOut', 'the fake is built like a TypeScript enum');
  assert.equal(reasonName(DisconnectReason, 408), 'connectionLost');
  assert.equal(reasonName(DisconnectReason, 0), 'unknown');
  assert.equal(reasonName(undefined, 401), 'unknown');
});

test('no reconnect after a close until connect; connect opens a new socket with the same state', async () => {
  const h = startSidecar();
  const first = await h.start(null);
  first.open();
  await settle();
  await h.ackAll();
  first.close(515, 'restart required');
  await settle(20);
  assert.equal(h.baileys.sockets.length, 1, 'never reconnects by itself');
  await h.send({ type: 'connect' });
  assert.equal(h.baileys.sockets.length, 2);
  const second = h.sock;
  assert.equal(second.config.auth.creds, first.config.auth.creds);
  assert.equal(second.config.auth.keys, first.config.auth.keys);
  assert.equal(second.config.auth.creds.me.id, '15550001111:3@s.whatsapp.net');
  second.open();
  await settle();
  assert.equal(h.ofType('connected').length, 2);
});

test('connect while a socket is open is ignored: one socket at a time', async () => {
  const h = startSidecar();
  await h.startOpen();
  await h.send({ type: 'connect' });
  assert.equal(h.baileys.sockets.length, 1);
  assert.match(h.logs.at(-1), /connect while a socket is open/);
});

test('connect before start is ignored', async () => {
  const h = startSidecar();
  await h.send({ type: 'connect' });
  assert.equal(h.baileys.sockets.length, 0);
  assert.match(h.logs.at(-1), /connect before start/);
});

test('a socket that cannot be made is reported as disconnected', async () => {
  const h = startSidecar();
  h.baileys.failNextSocket = boom(401, 'Mobile API is not supported anymore');
  await h.start(null);
  assert.deepEqual(h.last('disconnected'), {
    type: 'disconnected', code: 401, reason: 'loggedOut', message: 'Mobile API is not supported anymore'
  });
  await h.send({ type: 'connect' });
  assert.equal(h.baileys.sockets.length, 1, 'connect works after the failure');
});

test('events of an old socket do not change the state of the new one', async () => {
  const h = startSidecar();
  const first = await h.start(null);
  first.close(428, 'closed');
  await h.send({ type: 'connect' });
  first.ev.emit('connection.update', { connection: 'open' });
  await settle();
  assert.equal(h.ofType('connected').length, 0);
});

test('pair asks for a pairing code once the socket is up, before the link', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  await h.send({ type: 'pair', phone: '+1 555 000 1111' });
  assert.equal(sock.pairingPhone, undefined, 'waits for the socket to be up');
  sock.qr('ref1');
  await settle();
  assert.equal(sock.pairingPhone, '15550001111');
  assert.deepEqual(h.last('pairing_code'), { type: 'pairing_code', code: 'ABCD1234' });
  assert.equal(h.last('auth').creds.pairingCode, 'ABCD1234', 'the creds change is persisted');
  sock.qr('ref2');
  await settle();
  assert.equal(h.ofType('pairing_code').length, 1, 'asked once');
});

test('pair after the socket is up asks at once', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  sock.qr('ref1');
  await settle();
  await h.send({ type: 'pair', phone: '15550001111' });
  assert.equal(h.ofType('pairing_code').length, 1);
  assert.equal(sock.pairingPhone, '15550001111');
});

test('pair on a linked device is ignored (registered by code, or linked by QR)', async () => {
  for (const creds of [{ registered: true }, { registered: false, account: { details: 'x' } }]) {
    const h = startSidecar();
    const sock = await h.start({ creds, keys: {} });
    sock.qr('ref1');
    await h.send({ type: 'pair', phone: '15550001111' });
    assert.equal(sock.pairingPhone, undefined);
    assert.equal(h.ofType('pairing_code').length, 0);
    assert.match(h.logs.at(-1), /already linked/);
  }
});

test('logout unlinks, reports the 401 close and exits 0', async () => {
  const h = startSidecar();
  await h.startOpen();
  await h.send({ type: 'logout' });
  assert.deepEqual(h.last('disconnected'), {
    type: 'disconnected', code: 401, reason: 'loggedOut', message: 'Intentional Logout'
  });
  assert.deepEqual(h.exits, [0]);
});

test('a failed logout exits 1', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.logoutError = new Error('Connection Closed');
  await h.send({ type: 'logout' });
  assert.deepEqual(h.exits, [1]);
  assert.match(h.logs.at(-1), /logout failed: Connection Closed/);
});

test('logout while disconnected opens a socket to log out on, without reporting it connected', async () => {
  const h = startSidecar();
  const first = await h.startOpen();
  first.close(428);
  await settle();
  await h.send({ type: 'logout' });
  assert.equal(h.baileys.sockets.length, 2);
  assert.deepEqual(h.exits, []);
  h.sock.open();
  await settle();
  assert.equal(h.ofType('connected').length, 1, 'only the first socket was reported');
  assert.deepEqual(h.last('disconnected'), {
    type: 'disconnected', code: 401, reason: 'loggedOut', message: 'Intentional Logout'
  });
  assert.deepEqual(h.exits, [0]);
});

test('logout while connecting waits for the socket to open', async () => {
  const h = startSidecar();
  const sock = await h.start({ creds: { registered: false, account: { details: 'x' }, me: { id: 'a' } }, keys: {} });
  await h.send({ type: 'logout' });
  assert.equal(h.baileys.sockets.length, 1);
  assert.deepEqual(h.exits, []);
  sock.open();
  await settle();
  assert.equal(sock.closed, true);
  assert.deepEqual(h.exits, [0]);
});

test('logout fails with exit 1 when the socket closes before it opens', async () => {
  const h = startSidecar();
  const first = await h.startOpen();
  first.close(428);
  await settle();
  await h.send({ type: 'logout' });
  h.sock.close(408, 'timed out');
  await settle();
  assert.deepEqual(h.exits, [1]);
  assert.match(h.logs.at(-1), /closed before it opened/);
});

test('logout before any link has nothing to unlink: exits 0', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  sock.qr('ref1');
  await h.send({ type: 'logout' });
  assert.deepEqual(h.exits, [0]);
  assert.equal(sock.closed, true);
  assert.equal(h.ofType('disconnected').length, 0);
});

test('a QR link end to end: qr, pairing persisted, 515, connect, connected', async () => {
  const h = startSidecar();
  const first = await h.start(null);
  first.qr('ref1,noise,identity,adv');
  first.pairSuccess();
  await settle();
  const batch = h.last('auth');
  assert.equal(batch.creds.me.id, '15550001111:3@s.whatsapp.net');
  const details = { type: 'Buffer', data: Buffer.from('adv-details').toString('base64') };
  assert.deepEqual(batch.creds.account.details, details);
  assert.ok(batch.creds.noiseKey, 'the fresh keys go out with the first creds');
  first.close(515, 'Stream Errored (restart required)');
  await settle();
  assert.deepEqual(h.last('disconnected'), {
    type: 'disconnected', code: 515, reason: 'restartRequired', message: 'Stream Errored (restart required)'
  });
  await h.ackAll();
  await h.send({ type: 'connect' });
  h.sock.open();
  await settle();
  assert.deepEqual(h.last('connected'), { type: 'connected', jid: '15550001111:3@s.whatsapp.net', name: 'Ada' });
  assert.deepEqual(h.events.map((e) => e.type).filter((t) => t !== 'auth'),
    ['ready', 'qr', 'disconnected', 'connected']);
});

test('a lease not renewed in time closes the socket and refuses connect until a new lease', async () => {
  const h = startSidecar();
  const sock = await h.startOpen(null);
  await h.send({ type: 'lease', validForMs: 1000 });
  h.clock.advance(900);
  await h.send({ type: 'lease', validForMs: 1000 }); // renewed: the clock starts again
  h.clock.advance(900);
  await settle();
  assert.equal(sock.closed, false, 'a renewed tenure keeps the socket');
  h.clock.advance(200);
  await settle();
  assert.equal(sock.closed, true, 'the socket is closed once the tenure lapses');
  assert.deepEqual(h.last('disconnected'), {
    type: 'disconnected', code: 0, reason: 'lease_expired', message: 'the agent did not renew its tenure in time'
  });
  const sockets = h.baileys.sockets.length;
  await h.send({ type: 'connect' });
  assert.equal(h.baileys.sockets.length, sockets, 'no socket without a tenure');
  await h.send({ type: 'lease', validForMs: 1000 });
  await h.send({ type: 'connect' });
  assert.equal(h.baileys.sockets.length, sockets + 1, 'a new lease allows connect again');
});

test('a lease without a positive validForMs is ignored', async () => {
  const h = startSidecar();
  const sock = await h.startOpen(null);
  await h.send({ type: 'lease', validForMs: -5 });
  h.clock.advance(10 * 60 * 1000);
  await settle();
  assert.equal(sock.closed, false);
  assert.ok(h.logs.some((line) => line.includes('lease without a positive validForMs')));
});
