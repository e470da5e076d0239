// The socket: one Baileys socket at a time, made on `connect` and never remade on its own; its events become the
// sidecar's (connection state, QR and pairing codes, auth writes, messages, receipts), and a liveness clock
// presumes it dead when WhatsApp goes quiet after a send.
import { isLinked, toWire } from './auth-store.mjs';
import { errorMessage, makeBaileysLogger } from './logging.mjs';
import { toMessageEvent, toReceiptEvent, unwrapContent } from './messages.mjs';

const FIRST_QR_MS = 60000;
const NEXT_QR_MS = 20000;
const SENT_IDS_KEPT = 500;

// Socket events that only prove the connection still delivers. `creds.update` is not one: Baileys emits it locally.
// `connection.update`, `messages.upsert` and `messages.update` count too, in their own handlers.
const LIVENESS_EVENTS = [
  'message-receipt.update', 'messages.reaction', 'messages.delete', 'presence.update', 'chats.upsert',
  'chats.update', 'chats.delete', 'contacts.upsert', 'contacts.update', 'groups.upsert', 'groups.update',
  'group-participants.update', 'messaging-history.set', 'call', 'blocklist.set', 'blocklist.update'
];

// The socket side of the sidecar. `ctx` is the sidecar's shared state (see `runSidecar`): the socket reads and
// writes `ctx.session`, reads `ctx.creds`, `ctx.keyStore`, `ctx.options` and the flags, and takes a waiting
// `ctx.pairPhone`.
export function createConnection(ctx) {
  const { baileys, log, emit, finish, pipeline, now, setTimer, clearTimer } = ctx;
  const { BufferJSON } = baileys;
  const makeWASocket = baileys.makeWASocket ?? baileys.default;
  const normalize = typeof baileys.normalizeMessageContent === 'function'
    ? baileys.normalizeMessageContent
    : unwrapContent;
  const sentIDs = new Set(); // our own message ids: their echo (an `append`) is not a sign of life
  const stale = { timer: null, since: 0 };
  const baileysLogger = makeBaileysLogger(log);

  function connect() {
    if (!ctx.started || ctx.exited || ctx.stopping) {
      log('connect before start or while stopping: ignored');
      return;
    }
    if (ctx.session) {
      // One socket at a time: two sockets for one number double every message and fight each other (440).
      log('connect while a socket is open: ignored');
      return;
    }
    let sock;
    try {
      sock = makeWASocket(socketConfig());
    } catch (err) {
      emitDisconnected(err);
      return;
    }
    const s = { sock, open: false, qrCount: 0, pairingAsked: false, loggingOut: false };
    ctx.session = s;
    listen(s);
  }

  function socketConfig() {
    const { options } = ctx;
    const config = {
      auth: { creds: ctx.creds, keys: ctx.keyStore },
      logger: baileysLogger,
      markOnlineOnConnect: false,
      syncFullHistory: false,
      printQRInTerminal: false,
      getMessage: async () => undefined
    };
    if (options.browser) config.browser = options.browser;
    if (options.waWebSocketUrl) config.waWebSocketUrl = options.waWebSocketUrl;
    return config;
  }

  // Messages and receipts are reported from any of our sockets (one that just closed may still deliver what it
  // had received); only the current socket counts for liveness and connection state.
  function listen(s) {
    const ev = s.sock.ev;
    const current = () => ctx.session === s;
    ev.on('creds.update', onCredsUpdate);
    ev.on('connection.update', (update) => {
      if (!current()) return;
      noteInbound();
      onConnectionUpdate(s, update ?? {});
    });
    ev.on('messages.upsert', (upsert) => {
      if (current() && !isOwnEcho(upsert)) noteInbound();
      onUpsert(upsert);
    });
    ev.on('messages.update', (updates) => {
      if (current()) noteInbound();
      onMessagesUpdate(updates);
    });
    for (const name of LIVENESS_EVENTS) {
      ev.on(name, () => { if (current()) noteInbound(); });
    }
  }

  function onConnectionUpdate(s, update) {
    if (update.qr) {
      emit({ type: 'qr', qr: update.qr, expiresInMs: s.qrCount === 0 ? FIRST_QR_MS : NEXT_QR_MS });
      s.qrCount += 1;
      requestPairing(s);
    }
    if (update.connection === 'open') {
      s.open = true;
      if (ctx.loggingOut) {
        logoutNow(s); // opened only to log out: not reported as connected
        return;
      }
      emit({ type: 'connected', jid: s.sock.user?.id ?? '', name: s.sock.user?.name ?? undefined });
    }
    if (update.connection === 'close') {
      ctx.session = null;
      cancelStale();
      emitDisconnected(update.lastDisconnect?.error);
      if (ctx.loggingOut && !s.loggingOut) {
        log('logout failed: the socket closed before it opened');
        finish(1);
      }
    }
  }

  // A pairing code can be asked once the socket is up (its first QR shows it) and only before the link.
  function requestPairing(s) {
    if (!ctx.pairPhone || s.pairingAsked || s.qrCount === 0) return;
    const phone = ctx.pairPhone;
    ctx.pairPhone = null;
    if (isLinked(ctx.creds)) {
      log('pair ignored: the device is already linked');
      return;
    }
    s.pairingAsked = true;
    Promise.resolve()
      .then(() => s.sock.requestPairingCode(phone))
      .then((code) => emit({ type: 'pairing_code', code }))
      .catch((err) => log(`pairing code request failed: ${errorMessage(err)}`));
  }

  // WhatsApp forgets the device (on an open socket); exit 0 once it has, 1 when it failed (the device may still
  // be linked).
  async function logoutNow(s) {
    s.loggingOut = true;
    try {
      await s.sock.logout();
      finish(0);
    } catch (err) {
      log(`logout failed: ${errorMessage(err)}`);
      closeSocket();
      finish(1);
    }
  }

  // The socket merges the update into `creds` itself (the same object); merging again is harmless and covers a
  // socket that would not. The whole creds go out, so the agent never has to merge.
  function onCredsUpdate(update) {
    const { creds } = ctx;
    if (update && update !== creds) Object.assign(creds, update);
    pipeline.enqueue({ creds: toWire(BufferJSON, creds) });
  }

  function emitDisconnected(error) {
    const code = Number(error?.output?.statusCode) || 0;
    emit({
      type: 'disconnected',
      code,
      reason: reasonName(baileys.DisconnectReason, code),
      message: errorMessage(error)
    });
  }

  // Ends the current socket without logging out; its own close event is ignored (it is no longer current).
  function closeSocket() {
    const s = ctx.session;
    ctx.session = null;
    cancelStale();
    if (!s) return;
    try {
      s.sock.end(undefined);
    } catch (err) {
      log(`closing the socket failed: ${errorMessage(err)}`);
    }
  }

  // --- inbound -----------------------------------------------------------------------------------------------

  function onUpsert(upsert) {
    const type = upsert?.type;
    if (type !== 'notify' && type !== 'append') return;
    // `append` is never dropped: it carries what arrived while the socket was down.
    for (const msg of upsert.messages ?? []) {
      const event = toMessageEvent(msg, type, normalize);
      if (event) emit(event);
    }
  }

  function onMessagesUpdate(updates) {
    for (const entry of Array.isArray(updates) ? updates : []) {
      const event = toReceiptEvent(entry);
      if (event) emit(event);
    }
  }

  function isOwnEcho(upsert) {
    const messages = upsert?.messages ?? [];
    return messages.length > 0 && messages.every((m) => m?.key?.fromMe && sentIDs.has(m.key.id));
  }

  function rememberSent(messageID) {
    if (!messageID) return;
    sentIDs.add(messageID);
    if (sentIDs.size > SENT_IDS_KEPT) sentIDs.delete(sentIDs.values().next().value);
  }

  // --- liveness ----------------------------------------------------------------------------------------------
  // A send that succeeded starts the clock (unless one already runs: the oldest unanswered send counts); any
  // inbound event stops it (rather than being compared with a last-inbound time: one timer, no polling). When it
  // runs out the socket is presumed dead although it looks open.

  function armStale(s) {
    if (stale.timer || ctx.session !== s) return;
    stale.since = now();
    stale.timer = setTimer(() => onStale(s), ctx.options.staleAfterMs);
  }

  function noteInbound() {
    cancelStale();
  }

  function cancelStale() {
    if (!stale.timer) return;
    clearTimer(stale.timer);
    stale.timer = null;
  }

  function onStale(s) {
    stale.timer = null;
    if (ctx.session !== s || !s.open) return;
    const sinceMs = now() - stale.since;
    emit({ type: 'stale', sinceMs });
    closeSocket();
    emit({
      type: 'disconnected',
      code: 0,
      reason: 'stale',
      message: `no event from WhatsApp for ${sinceMs} ms after a send`
    });
  }

  return { connect, closeSocket, requestPairing, logoutNow, rememberSent, armStale, cancelStale };
}

// The name of a `DisconnectReason` code: the first name declared with it (408 is both connectionLost and timedOut:
// connectionLost), `unknown` for none. Numeric keys (a TypeScript enum's reverse mapping) are skipped.
export function reasonName(table, code) {
  if (code && table) {
    for (const [name, value] of Object.entries(table)) {
      if (value === code && !/^\d+$/.test(name)) return name;
    }
  }
  return 'unknown';
}
