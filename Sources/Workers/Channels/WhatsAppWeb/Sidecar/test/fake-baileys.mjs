// A stand-in for the `baileys` module: the exports the sidecar uses, with a socket whose events the tests drive
// the way the real socket emits them (v6.7.23: src/Socket/socket.ts, src/Utils/generics.ts, src/Types/index.ts).
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';

// Built the way TypeScript compiles a numeric enum (names, then reverse mappings number → name).
export const DisconnectReason = (() => {
  const table = {};
  const codes = [
    ['connectionClosed', 428], ['connectionLost', 408], ['connectionReplaced', 440], ['timedOut', 408],
    ['loggedOut', 401], ['badSession', 500], ['restartRequired', 515], ['multideviceMismatch', 411],
    ['forbidden', 403], ['unavailableService', 503]
  ];
  for (const [name, code] of codes) table[table[name] = code] = name;
  return table;
})();

// Bytes ⇄ `{type:'Buffer', data:<base64>}`. `Buffer#toJSON` runs before a replacer, hence the `type` check.
export const BufferJSON = {
  replacer(_key, value) {
    if (Buffer.isBuffer(value) || value instanceof Uint8Array || value?.type === 'Buffer') {
      return { type: 'Buffer', data: Buffer.from(value?.data ?? value).toString('base64') };
    }
    return value;
  },
  reviver(_key, value) {
    if (value && typeof value === 'object' && (value.buffer === true || value.type === 'Buffer')) {
      const data = value.data ?? value.value;
      return typeof data === 'string' ? Buffer.from(data, 'base64') : Buffer.from(data ?? []);
    }
    return value;
  }
};

export function boom(statusCode, message) {
  const error = new Error(message);
  error.isBoom = true;
  error.output = { statusCode, payload: { statusCode, message } };
  return error;
}

const keyPair = () => ({ private: randomBytes(32), public: randomBytes(32) });

export function createFakeBaileys() {
  const fake = {
    sockets: [],
    initAuthCredsCalls: 0,
    DisconnectReason,
    BufferJSON,
    initAuthCreds() {
      fake.initAuthCredsCalls += 1;
      return {
        noiseKey: keyPair(),
        signedIdentityKey: keyPair(),
        advSecretKey: randomBytes(32).toString('base64'),
        nextPreKeyId: 1,
        firstUnuploadedPreKeyId: 1,
        registered: false
      };
    },
    proto: {
      Message: {
        AppStateSyncKeyData: {
          fromObject: (object) => ({ ...object, hydrated: true })
        }
      }
    },
    normalizeMessageContent(content) {
      let current = content;
      for (let i = 0; i < 5 && current; i++) {
        const inner = current.ephemeralMessage || current.viewOnceMessage || current.documentWithCaptionMessage ||
          current.viewOnceMessageV2 || current.viewOnceMessageV2Extension || current.editedMessage;
        if (!inner) break;
        current = inner.message;
      }
      return current ?? undefined;
    },
    makeWASocket(config) {
      if (fake.failNextSocket) {
        const error = fake.failNextSocket;
        fake.failNextSocket = null;
        throw error;
      }
      const sock = new FakeSocket(config);
      fake.sockets.push(sock);
      return sock;
    },
    get lastSocket() {
      return fake.sockets[fake.sockets.length - 1];
    }
  };
  fake.default = fake.makeWASocket;
  return fake;
}

export class FakeSocket {
  constructor(config) {
    this.config = config;
    this.ev = new EventEmitter();
    this.authState = config.auth;
    this.closed = false;
    this.sent = [];
    this.presences = [];
    this.reads = [];
    this.sendImpl = null; // (jid, content, options) => result or throw
    this.logoutError = null;
    this.nextID = 1;
    // Like the real socket: it merges every creds update into the creds object it was given.
    this.ev.on('creds.update', (update) => Object.assign(this.authState.creds, update));
    process.nextTick(() => this.emitConnection({ connection: 'connecting', receivedPendingNotifications: false }));
  }

  get user() {
    return this.authState.creds.me;
  }

  emitConnection(update) {
    this.ev.emit('connection.update', update);
  }

  // --- what the tests drive ----------------------------------------------------------------------------------

  qr(text) {
    this.emitConnection({ qr: text });
  }

  // The pairing succeeded (QR scanned or code typed): the creds get the linked identity.
  pairSuccess(me = { id: '15550001111:3@s.whatsapp.net', name: 'Ada' }) {
    const account = { details: Buffer.from('adv-details'), accountSignature: Buffer.from('sig') };
    this.ev.emit('creds.update', { me, account });
    this.emitConnection({ isNewLogin: true, qr: undefined });
  }

  // Only linked creds open; unlinked ones are linked first, as if the pairing had happened on an earlier socket.
  open(me = { id: '15550001111:3@s.whatsapp.net', name: 'Ada' }) {
    if (!this.authState.creds.account) this.pairSuccess(me);
    else this.ev.emit('creds.update', { me });
    this.emitConnection({ connection: 'open' });
  }

  close(statusCode, message = 'closed') {
    this.end(statusCode === undefined ? undefined : boom(statusCode, message));
  }

  upsert(type, messages) {
    this.ev.emit('messages.upsert', { type, messages });
  }

  update(updates) {
    this.ev.emit('messages.update', updates);
  }

  // --- Baileys' socket API -----------------------------------------------------------------------------------

  end(error) {
    if (this.closed) return;
    this.closed = true;
    this.emitConnection({ connection: 'close', lastDisconnect: { error, date: new Date() } });
    this.ev.removeAllListeners('connection.update');
  }

  async logout() {
    if (this.logoutError) throw this.logoutError;
    this.end(boom(401, 'Intentional Logout'));
  }

  async requestPairingCode(phone) {
    this.pairingPhone = phone;
    this.authState.creds.pairingCode = 'ABCD1234';
    this.authState.creds.me = { id: `${phone}@s.whatsapp.net`, name: '~' };
    this.ev.emit('creds.update', this.authState.creds);
    return 'ABCD1234';
  }

  async sendMessage(jid, content, options) {
    this.sent.push({ jid, content, options });
    if (this.sendImpl) return this.sendImpl(jid, content, options);
    const key = { remoteJid: jid, fromMe: true, id: `OWN${this.nextID++}` };
    return { key, message: { conversation: content.text } };
  }

  async sendPresenceUpdate(state, jid) {
    this.presences.push({ state, jid });
  }

  async readMessages(keys) {
    this.reads.push(keys);
  }
}
