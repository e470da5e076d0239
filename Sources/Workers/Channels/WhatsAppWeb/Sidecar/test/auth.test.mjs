import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferJSON } from './fake-baileys.mjs';
import { settle, startSidecar } from './harness.mjs';

const wire = (value) => JSON.parse(JSON.stringify(value, BufferJSON.replacer));
const b64 = (text) => Buffer.from(text).toString('base64');

// An auth state as the agent stores it: BufferJSON form inside plain JSON.
function storedAuth() {
  return {
    creds: {
      noiseKey: {
        private: { type: 'Buffer', data: b64('noise-private') },
        public: { type: 'Buffer', data: b64('np') }
      },
      registered: true,
      me: { id: '15550001111:3@s.whatsapp.net', name: 'Ada' },
      nextPreKeyId: 31
    },
    keys: {
      session: { '15550002222.0': { type: 'Buffer', data: b64('session-record') } },
      'app-state-sync-key': { AAA: { keyData: { type: 'Buffer', data: b64('sync-key') }, timestamp: 5 } }
    }
  };
}

test('start with null auth makes fresh creds with initAuthCreds', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  assert.equal(h.baileys.initAuthCredsCalls, 1);
  assert.equal(sock.config.auth.creds.registered, false);
  assert.ok(Buffer.isBuffer(sock.config.auth.creds.noiseKey.public));
  assert.deepEqual(await sock.config.auth.keys.get('session', ['x']), {});
});

test('start passes the socket options of the brief', async () => {
  const h = startSidecar();
  const sock = await h.start(null, { waWebSocketUrl: 'ws://127.0.0.1:9/ws' });
  const c = sock.config;
  assert.deepEqual(c.browser, ['Switchboard', 'Chrome', '1.0']);
  assert.equal(c.markOnlineOnConnect, false);
  assert.equal(c.syncFullHistory, false);
  assert.equal(c.printQRInTerminal, false);
  assert.equal(c.waWebSocketUrl, 'ws://127.0.0.1:9/ws');
  assert.equal(await c.getMessage({ id: 'x' }), undefined);
  assert.equal(typeof c.logger.child({ class: 'x' }).warn, 'function');
  assert.equal(c.logger.child().level, 'warn');
});

test('stored auth is revived: creds and keys hold bytes, app state sync keys are hydrated', async () => {
  const h = startSidecar();
  const sock = await h.start(storedAuth());
  assert.equal(h.baileys.initAuthCredsCalls, 0);
  const { creds, keys } = sock.config.auth;
  assert.ok(Buffer.isBuffer(creds.noiseKey.private));
  assert.equal(creds.noiseKey.private.toString(), 'noise-private');
  assert.equal(creds.registered, true);
  const sessions = await keys.get('session', ['15550002222.0', 'missing']);
  assert.deepEqual(Object.keys(sessions), ['15550002222.0']);
  assert.equal(sessions['15550002222.0'].toString(), 'session-record');
  const sync = await keys.get('app-state-sync-key', ['AAA']);
  assert.equal(sync.AAA.hydrated, true);
  assert.equal(sync.AAA.keyData.toString(), 'sync-key');
});

test('keys.set emits an auth batch and resolves only after auth_committed; memory changes then', async () => {
  const h = startSidecar();
  const sock = await h.start(storedAuth());
  const keys = sock.config.auth.keys;
  let resolved = false;
  const write = keys.set({
    'pre-key': { 1: { private: Buffer.from('p1'), public: new Uint8Array([1, 2]) } },
    session: { '15550002222.0': null }
  }).then(() => { resolved = true; });
  await settle();
  const batch = h.last('auth');
  assert.deepEqual(batch, {
    type: 'auth',
    batch: 1,
    keys: {
      'pre-key': { 1: { private: { type: 'Buffer', data: b64('p1') }, public: { type: 'Buffer', data: 'AQI=' } } },
      session: { '15550002222.0': null }
    }
  });
  assert.equal(resolved, false, 'still pending before the ack');
  assert.deepEqual(Object.keys(await keys.get('session', ['15550002222.0'])), ['15550002222.0'], 'not applied yet');
  assert.deepEqual(await keys.get('pre-key', ['1']), {});
  await h.send({ type: 'auth_committed', batch: 1 });
  await write;
  assert.equal(resolved, true);
  assert.deepEqual(await keys.get('session', ['15550002222.0']), {}, 'null deleted the key');
  const preKey = (await keys.get('pre-key', ['1']))['1'];
  assert.equal(preKey.private.toString(), 'p1');
  assert.deepEqual([...preKey.public], [1, 2]);
});

test('auth batches are emitted in order, one at a time', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  const keys = sock.config.auth.keys;
  const done = [];
  const first = keys.set({ session: { a: Buffer.from('1') } }).then(() => done.push(1));
  sock.ev.emit('creds.update', { nextPreKeyId: 2 });
  const third = keys.set({ session: { b: Buffer.from('3') } }).then(() => done.push(3));
  await settle();
  assert.deepEqual(h.ofType('auth').map((e) => e.batch), [1], 'batch 2 waits for batch 1');
  await h.send({ type: 'auth_committed', batch: 2 });
  assert.deepEqual(h.ofType('auth').map((e) => e.batch), [1], 'an ack for a batch not in flight is ignored');
  assert.match(h.logs.at(-1), /batch 2 does not match/);
  await h.send({ type: 'auth_committed', batch: 1 });
  await first;
  const batches = h.ofType('auth');
  assert.deepEqual(batches.map((e) => e.batch), [1, 2]);
  assert.equal(batches[1].creds.nextPreKeyId, 2);
  assert.equal('keys' in batches[1], false);
  await h.send({ type: 'auth_committed', batch: 2 });
  assert.deepEqual(h.ofType('auth').map((e) => e.batch), [1, 2, 3]);
  assert.deepEqual(h.last('auth').keys, { session: { b: { type: 'Buffer', data: b64('3') } } });
  assert.deepEqual(done, [1]);
  await h.send({ type: 'auth_committed', batch: 3 });
  await third;
  assert.deepEqual(done, [1, 3]);
});

test('creds.update emits the whole creds in BufferJSON form, not the partial update', async () => {
  const h = startSidecar();
  const sock = await h.start(storedAuth());
  sock.ev.emit('creds.update', { nextPreKeyId: 61, firstUnuploadedPreKeyId: 61 });
  await settle();
  const batch = h.last('auth');
  assert.equal(batch.batch, 1);
  assert.equal('keys' in batch, false);
  assert.deepEqual(batch.creds, wire({ ...sock.config.auth.creds }));
  assert.equal(batch.creds.nextPreKeyId, 61);
  assert.equal(batch.creds.registered, true);
  assert.deepEqual(batch.creds.noiseKey.private, { type: 'Buffer', data: b64('noise-private') });
});

test('creds that change before the ack go out whole in the next batch', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  sock.ev.emit('creds.update', { nextPreKeyId: 2 });
  sock.ev.emit('creds.update', { nextPreKeyId: 3 });
  await settle();
  await h.ackAll();
  const batches = h.ofType('auth');
  assert.deepEqual(batches.map((e) => e.creds.nextPreKeyId), [2, 3]);
});

test('auth_refused logs, closes the socket and exits 4 at once', async () => {
  const h = startSidecar();
  const sock = await h.start(null);
  const pending = sock.config.auth.keys.set({ session: { a: Buffer.from('x') } });
  let resolved = false;
  pending.then(() => { resolved = true; });
  await settle();
  await h.send({ type: 'auth_refused', batch: 1, reason: 'stale lease token' });
  assert.deepEqual(h.exits, [4]);
  assert.equal(sock.closed, true);
  assert.match(h.logs.at(-1), /batch 1 refused \(stale lease token\)/);
  await settle();
  assert.equal(resolved, false, 'a refused write never resolves');
});

test('nothing secret reaches the log: the Baileys logger writes only messages', async () => {
  const h = startSidecar();
  const sock = await h.start(storedAuth());
  const logger = sock.config.logger;
  logger.info({ creds: 'SECRET' }, 'info is quiet');
  logger.debug('debug is quiet');
  logger.warn({ key: Buffer.from('SECRET'), node: { attrs: { secret: 'SECRET' } } }, 'failed to decrypt');
  logger.error({ err: new Error('bad mac'), session: 'SECRET' }, 'error in handling message');
  logger.error({ trace: 'Error: stream errored\n    at x (SECRET)' }, 'stream errored out');
  logger.warn('plain text');
  assert.deepEqual(h.logs, [
    'baileys warn: failed to decrypt',
    'baileys error: error in handling message: bad mac',
    'baileys error: stream errored out: Error: stream errored',
    'baileys warn: plain text'
  ]);
  assert.equal(h.logs.some((l) => l.includes('SECRET')), false);
});
