// Switchboard's WhatsApp Web sidecar: one Baileys socket (a linked device), driven by the agent over JSON lines
// (commands on `input`, events on `output`; the protocol is in docs/channels.md). Baileys comes in as an object
// (its module's exports) so everything here runs against a fake in the tests.
//
// The sidecar decides nothing on its own: it never reconnects, never stores anything, and exits when told to or
// when its input closes. Every auth write of the socket is handed to the agent and waited for.

export const MAX_LINE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_STALE_AFTER_MS = 120000;
// Longer than Baileys' own query timeout (60 s), so its error wins when it has one; every send is answered.
export const SEND_TIMEOUT_MS = 90000;
export const STOP_GRACE_MS = 1000;
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

// Message parts that carry nothing worth recording: a message made only of these is skipped.
const SILENT_PARTS = new Set([
  'messageContextInfo', 'senderKeyDistributionMessage', 'fastRatchetKeySenderKeyDistributionMessage',
  'protocolMessage', 'reactionMessage', 'encReactionMessage', 'pollUpdateMessage', 'keepInChatMessage',
  'pinInChatMessage'
]);

// Wrappers Baileys' `normalizeMessageContent` unwraps; used only when the module does not export it.
const WRAPPERS = [
  'ephemeralMessage', 'viewOnceMessage', 'documentWithCaptionMessage', 'viewOnceMessageV2',
  'viewOnceMessageV2Extension', 'editedMessage'
];

export function runSidecar({
  baileys, input, output, log, exit, version = null, now = Date.now, setTimer = setTimeout,
  clearTimer = clearTimeout
}) {
  const { BufferJSON } = baileys;
  const makeWASocket = baileys.makeWASocket ?? baileys.default;
  const normalize = typeof baileys.normalizeMessageContent === 'function'
    ? baileys.normalizeMessageContent
    : unwrapContent;

  let exited = false;
  let stopping = false;
  let started = false;
  let options = null; // from `start`: browser, staleAfterMs, waWebSocketUrl
  let creds = null;
  let keyStore = null;
  let session = null; // the current socket: { sock, open, qrCount, pairingAsked }
  let pairPhone = null; // a `pair` waiting for the socket to be up
  let loggingOut = false; // a `logout` waiting for the socket to open
  const sentIDs = new Set(); // our own message ids: their echo (an `append`) is not a sign of life
  const stale = { timer: null, since: 0 };
  const baileysLogger = makeBaileysLogger(log);

  function emit(event) {
    if (!exited) output.write(JSON.stringify(event) + '\n');
  }

  function finish(code) {
    if (exited) return;
    exited = true;
    cancelStale();
    exit(code);
  }

  const pipeline = createAuthPipeline({ emit, onIdle: () => { if (stopping) finish(0); } });

  // --- input -------------------------------------------------------------------------------------------------

  const reader = createLineReader({
    onLine: handleLine,
    onReject: () => log(`rejected an input line over ${MAX_LINE_BYTES} bytes`)
  });
  input.on('data', (chunk) => { if (!exited) reader.push(chunk); });
  // The agent died or stopped us: nobody can acknowledge anything any more.
  const onInputGone = () => { if (!exited) { closeSocket(); finish(0); } };
  input.on('end', onInputGone);
  input.on('close', onInputGone);
  input.on('error', (err) => { log(`input error: ${err.message}`); onInputGone(); });
  output.on?.('error', (err) => { log(`output error: ${err.message}`); closeSocket(); finish(0); });

  function handleLine(line) {
    if (exited || line.trim() === '') return;
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      // The line itself is never logged: it may hold auth state.
      log(`rejected an input line: not JSON (${Buffer.byteLength(line)} bytes)`);
      return;
    }
    if (!command || typeof command !== 'object' || typeof command.type !== 'string') {
      log('rejected an input line: not an object with a type');
      return;
    }
    const handler = Object.hasOwn(COMMANDS, command.type) ? COMMANDS[command.type] : null;
    if (!handler) {
      log(`ignored an unknown command: ${command.type.slice(0, 40)}`);
      return;
    }
    try {
      handler(command);
    } catch (err) {
      log(`command ${command.type} failed: ${errorMessage(err)}`);
    }
  }

  const COMMANDS = {
    start: handleStart,
    connect: () => connect(),
    pair: handlePair,
    send: (cmd) => { handleSend(cmd); },
    presence: handlePresence,
    read: handleRead,
    auth_committed: (cmd) => {
      if (!pipeline.committed(cmd.batch)) log(`auth_committed for batch ${cmd.batch} does not match: ignored`);
    },
    auth_refused: (cmd) => {
      log(`auth batch ${cmd.batch} refused (${String(cmd.reason ?? '').slice(0, 200)}): stopping`);
      closeSocket();
      finish(4);
    },
    stop: handleStop,
    logout: () => { handleLogout(); }
  };

  // --- commands ----------------------------------------------------------------------------------------------

  function handleStart(cmd) {
    if (started) {
      log('start received twice: ignored');
      return;
    }
    started = true;
    options = {
      browser: Array.isArray(cmd.browser) && cmd.browser.length === 3 ? cmd.browser.map(String) : undefined,
      staleAfterMs: Number.isFinite(cmd.staleAfterMs) && cmd.staleAfterMs > 0
        ? cmd.staleAfterMs
        : DEFAULT_STALE_AFTER_MS,
      waWebSocketUrl: typeof cmd.waWebSocketUrl === 'string' ? cmd.waWebSocketUrl : undefined
    };
    const auth = cmd.auth && typeof cmd.auth === 'object' && cmd.auth.creds ? cmd.auth : null;
    creds = auth ? revive(BufferJSON, auth.creds) : baileys.initAuthCreds();
    keyStore = createKeyStore({ baileys, initial: auth?.keys, pipeline });
    connect();
  }

  function handlePair(cmd) {
    const phone = String(cmd.phone ?? '').replace(/\D/g, '');
    if (!phone) {
      log('pair without a phone number: ignored');
      return;
    }
    pairPhone = phone;
    if (session) requestPairing(session);
  }

  async function handleSend(cmd) {
    const { id, jid, text, quoted } = cmd;
    if (typeof id !== 'string' || id === '') {
      log('send without an id: ignored');
      return;
    }
    if (typeof jid !== 'string' || typeof text !== 'string') {
      emit({ type: 'send_failed', id, uncertain: false, reason: 'invalid send command' });
      return;
    }
    const s = session;
    if (!s || !s.open) {
      emit({ type: 'send_failed', id, uncertain: false, reason: 'not connected' });
      return;
    }
    // From here the message may reach WhatsApp: any failure is uncertain.
    let answered = false;
    const answer = (event) => {
      if (answered) return false;
      answered = true;
      clearTimer(timer);
      emit(event);
      return true;
    };
    const timer = setTimer(
      () => answer({ type: 'send_failed', id, uncertain: true, reason: 'timeout' }),
      SEND_TIMEOUT_MS
    );
    try {
      const result = await s.sock.sendMessage(jid, { text }, quotedOptions(jid, quoted));
      const messageID = result?.key?.id ?? undefined;
      if (answer({ type: 'sent', id, messageID })) {
        rememberSent(messageID);
        armStale(s);
      } else {
        log(`send ${id} succeeded after its timeout was reported`);
      }
    } catch (err) {
      answer({ type: 'send_failed', id, uncertain: true, reason: errorMessage(err) });
    }
  }

  function handlePresence(cmd) {
    const s = openSession('presence');
    if (!s || typeof cmd.jid !== 'string' || typeof cmd.state !== 'string') return;
    Promise.resolve()
      .then(() => s.sock.sendPresenceUpdate(cmd.state, cmd.jid))
      .catch((err) => log(`presence failed: ${errorMessage(err)}`));
  }

  function handleRead(cmd) {
    const s = openSession('read');
    if (!s || typeof cmd.jid !== 'string' || !Array.isArray(cmd.ids)) return;
    const keys = cmd.ids
      .filter((id) => typeof id === 'string')
      .map((id) => ({ remoteJid: cmd.jid, id, fromMe: false }));
    if (keys.length === 0) return;
    Promise.resolve()
      .then(() => s.sock.readMessages(keys))
      .catch((err) => log(`read failed: ${errorMessage(err)}`));
  }

  // Closes the socket (no logout) and exits once every auth batch is acknowledged, or after STOP_GRACE_MS.
  function handleStop() {
    closeSocket();
    stopping = true;
    if (pipeline.idle()) {
      finish(0);
      return;
    }
    setTimer(() => finish(0), STOP_GRACE_MS);
  }

  // WhatsApp forgets the device: Baileys can only say so on an open socket, so a socket that is not open (still
  // connecting, or closed and waiting for `connect`) is opened first. The close the logout causes is reported
  // (401) before the exit. Exit 1 when it failed (the device may still be linked).
  function handleLogout() {
    if (!creds || !isLinked(creds)) {
      log('logout before any link: nothing to unlink');
      closeSocket();
      finish(0);
      return;
    }
    loggingOut = true;
    if (session?.open) {
      logoutNow(session);
      return;
    }
    if (!session) connect();
    if (!session) finish(1); // the socket could not be made (reported as disconnected)
  }

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

  // Baileys sets `registered` only for a link made with a pairing code; a QR link leaves it false and sets
  // `account` (the signed device identity), as a pairing code link does too.
  function isLinked(value) {
    return Boolean(value.registered || value.account);
  }

  function openSession(what) {
    if (session?.open) return session;
    log(`${what} while not connected: ignored`);
    return null;
  }

  // --- the socket --------------------------------------------------------------------------------------------

  function connect() {
    if (!started || exited || stopping) {
      log('connect before start or while stopping: ignored');
      return;
    }
    if (session) {
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
    session = s;
    listen(s);
  }

  function socketConfig() {
    const config = {
      auth: { creds, keys: keyStore },
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
    const current = () => session === s;
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
      if (loggingOut) {
        logoutNow(s); // opened only to log out: not reported as connected
        return;
      }
      emit({ type: 'connected', jid: s.sock.user?.id ?? '', name: s.sock.user?.name ?? undefined });
    }
    if (update.connection === 'close') {
      session = null;
      cancelStale();
      emitDisconnected(update.lastDisconnect?.error);
      if (loggingOut && !s.loggingOut) {
        log('logout failed: the socket closed before it opened');
        finish(1);
      }
    }
  }

  // A pairing code can be asked once the socket is up (its first QR shows it) and only before the link.
  function requestPairing(s) {
    if (!pairPhone || s.pairingAsked || s.qrCount === 0) return;
    const phone = pairPhone;
    pairPhone = null;
    if (isLinked(creds)) {
      log('pair ignored: the device is already linked');
      return;
    }
    s.pairingAsked = true;
    Promise.resolve()
      .then(() => s.sock.requestPairingCode(phone))
      .then((code) => emit({ type: 'pairing_code', code }))
      .catch((err) => log(`pairing code request failed: ${errorMessage(err)}`));
  }

  // The socket merges the update into `creds` itself (the same object); merging again is harmless and covers a
  // socket that would not. The whole creds go out, so the agent never has to merge.
  function onCredsUpdate(update) {
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
    const s = session;
    session = null;
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
    for (const { key, update } of Array.isArray(updates) ? updates : []) {
      if (typeof update?.status !== 'number' || !key?.id || !key.remoteJid) continue;
      emit({ type: 'receipt', id: key.id, chat: key.remoteJid, status: update.status });
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
    if (stale.timer || session !== s) return;
    stale.since = now();
    stale.timer = setTimer(() => onStale(s), options.staleAfterMs);
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
    if (session !== s || !s.open) return;
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

  emit({ type: 'ready', version: version ?? undefined, node: process.version });
}

// --- auth ----------------------------------------------------------------------------------------------------

// Every auth write becomes one `auth` event with the next batch number; batch n+1 is not emitted before n is
// acknowledged (`auth_committed`), so the agent sees the writes in the order Baileys made them.
export function createAuthPipeline({ emit, onIdle = () => {} }) {
  const queue = [];
  let inFlight = null;
  let nextBatch = 1;

  function pump() {
    if (inFlight || queue.length === 0) return;
    inFlight = queue.shift();
    inFlight.batch = nextBatch++;
    emit({ type: 'auth', batch: inFlight.batch, ...inFlight.payload });
  }

  return {
    // `payload` is `{creds}` or `{keys}` in wire form; `onCommit` runs before the returned promise resolves.
    enqueue(payload, onCommit) {
      return new Promise((resolve) => {
        queue.push({ payload, onCommit, resolve });
        pump();
      });
    },
    committed(batch) {
      if (!inFlight || inFlight.batch !== batch) return false;
      const done = inFlight;
      inFlight = null;
      done.onCommit?.();
      done.resolve();
      pump();
      if (!inFlight) onIdle();
      return true;
    },
    idle: () => inFlight === null && queue.length === 0
  };
}

// Baileys' `SignalKeyStore` over memory. Memory holds only what the agent has committed: a `set` is applied when
// its batch is acknowledged, and its promise resolves then (Baileys waits for it before going on).
export function createKeyStore({ baileys, initial, pipeline }) {
  const { BufferJSON } = baileys;
  const memory = new Map();

  function apply(wire) {
    for (const [type, values] of Object.entries(wire ?? {})) {
      if (!values || typeof values !== 'object') continue;
      let byId = memory.get(type);
      if (!byId) memory.set(type, (byId = new Map()));
      for (const [id, value] of Object.entries(values)) {
        if (value === null || value === undefined) byId.delete(id);
        else byId.set(id, revive(BufferJSON, value));
      }
    }
  }

  // App state sync keys are protobuf messages; Baileys reads them as such.
  function hydrate(type, value) {
    const AppStateSyncKeyData = baileys.proto?.Message?.AppStateSyncKeyData;
    return type === 'app-state-sync-key' && AppStateSyncKeyData ? AppStateSyncKeyData.fromObject(value) : value;
  }

  apply(initial);

  return {
    async get(type, ids) {
      const byId = memory.get(type);
      const found = {};
      for (const id of ids ?? []) {
        const value = byId?.get(id);
        if (value !== undefined) found[id] = hydrate(type, value);
      }
      return found;
    },
    set(data) {
      const wire = {};
      for (const [type, values] of Object.entries(data ?? {})) {
        wire[type] = {};
        for (const [id, value] of Object.entries(values ?? {})) {
          wire[type][id] = value === null || value === undefined ? null : toWire(BufferJSON, value);
        }
      }
      return pipeline.enqueue({ keys: wire }, () => apply(wire));
    }
  };
}

// JSON as it is on the wire (bytes as `{type:'Buffer', data:<base64>}`) from live values, and back.
function toWire(BufferJSON, value) {
  return JSON.parse(JSON.stringify(value, BufferJSON.replacer));
}

function revive(BufferJSON, value) {
  return JSON.parse(JSON.stringify(value), BufferJSON.reviver);
}

// --- input lines ---------------------------------------------------------------------------------------------

// Splits a byte stream into lines. A line longer than `maxBytes` is dropped as it streams in (never buffered
// whole), reported once, and reading goes on after its newline.
export function createLineReader({ onLine, onReject, maxBytes = MAX_LINE_BYTES }) {
  let parts = [];
  let size = 0;
  let discarding = false;

  function take(piece) {
    if (discarding || piece.length === 0) return;
    if (size + piece.length > maxBytes) {
      parts = [];
      size = 0;
      discarding = true;
      onReject();
      return;
    }
    parts.push(piece);
    size += piece.length;
  }

  function endLine() {
    if (discarding) {
      discarding = false;
      return;
    }
    const line = Buffer.concat(parts, size).toString('utf8');
    parts = [];
    size = 0;
    onLine(line);
  }

  return {
    push(chunk) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      let start = 0;
      while (start <= bytes.length) {
        const newline = bytes.indexOf(0x0a, start);
        if (newline === -1) {
          take(bytes.subarray(start));
          return;
        }
        take(bytes.subarray(start, newline));
        endLine();
        start = newline + 1;
      }
    }
  };
}

// --- messages ------------------------------------------------------------------------------------------------

// One `message` event for a Baileys `WAMessage`, or null when it carries nothing to record: status updates,
// reactions, protocol messages, and messages without content (a decryption failure: the real message may come
// later with the same id, and the agent dedupes on it).
export function toMessageEvent(msg, upsert, normalize = unwrapContent) {
  const key = msg?.key;
  if (!key?.id || !key.remoteJid || key.remoteJid === 'status@broadcast') return null;
  const content = normalize(msg.message);
  if (!hasContent(content)) return null;
  const { text, kind, quotedID } = readText(content);
  return {
    type: 'message',
    upsert,
    id: key.id,
    chat: key.remoteJid,
    sender: key.participant || key.remoteJid,
    fromMe: Boolean(key.fromMe),
    pushName: msg.pushName || undefined,
    timestamp: toSeconds(msg.messageTimestamp),
    text,
    kind,
    quotedID
  };
}

function hasContent(content) {
  if (!content || typeof content !== 'object') return false;
  return Object.keys(content).some((part) => content[part] != null && !SILENT_PARTS.has(part));
}

// The text of a message and what kind of message held it.
export function readText(content) {
  if (typeof content.conversation === 'string' && content.conversation !== '') {
    return { text: content.conversation, kind: 'text' };
  }
  const extended = content.extendedTextMessage;
  if (extended && typeof extended.text === 'string') {
    const quotedID = quotedOf(extended);
    return { text: extended.text, kind: quotedID ? 'reply' : 'extended', quotedID };
  }
  for (const part of ['imageMessage', 'videoMessage', 'documentMessage']) {
    const media = content[part];
    if (!media) continue;
    return media.caption
      ? { text: media.caption, kind: 'caption', quotedID: quotedOf(media) }
      : { kind: 'other', quotedID: quotedOf(media) };
  }
  const reply = replyText(content);
  if (reply) return { text: reply.text, kind: 'text', quotedID: quotedOf(reply.part) };
  return { kind: 'other' };
}

// The display text of a button, list or template reply.
function replyText(content) {
  const buttons = content.buttonsResponseMessage;
  if (buttons?.selectedDisplayText) return { text: buttons.selectedDisplayText, part: buttons };
  const list = content.listResponseMessage;
  const listText = list?.title || list?.singleSelectReply?.selectedRowId;
  if (listText) return { text: listText, part: list };
  const template = content.templateButtonReplyMessage;
  if (template?.selectedDisplayText) return { text: template.selectedDisplayText, part: template };
  return null;
}

function quotedOf(part) {
  return part?.contextInfo?.stanzaId || undefined;
}

// `messageTimestamp` is a number, a protobuf Long or a numeric string.
function toSeconds(value) {
  if (value == null) return undefined;
  const seconds = typeof value === 'object' && typeof value.toNumber === 'function' ? value.toNumber() : Number(value);
  return Number.isFinite(seconds) ? Math.trunc(seconds) : undefined;
}

export function unwrapContent(content) {
  let current = content ?? undefined;
  for (let depth = 0; depth < 5 && current; depth++) {
    const wrapper = WRAPPERS.map((name) => current[name]).find(Boolean);
    if (!wrapper) break;
    current = wrapper.message ?? undefined;
  }
  return current;
}

// --- helpers -------------------------------------------------------------------------------------------------

function quotedOptions(jid, quoted) {
  if (typeof quoted !== 'string' || quoted === '') return {};
  return { quoted: { key: { remoteJid: jid, id: quoted, fromMe: false }, message: { conversation: '' } } };
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

function errorMessage(err) {
  if (err == null) return '';
  const message = typeof err === 'string' ? err : err.message;
  return String(message ?? '').replace(/\s+/g, ' ').slice(0, 300);
}

// A pino-compatible logger for Baileys writing warn and above to stderr. Only a message and an error's message
// are written, never the objects Baileys passes along (they may hold keys or message content).
export function makeBaileysLogger(log, level = 'warn') {
  const quiet = () => {};
  const write = (name) => (first, second) => log(`baileys ${name}: ${describeLog(first, second)}`);
  const logger = {
    level,
    trace: quiet,
    debug: quiet,
    info: quiet,
    warn: write('warn'),
    error: write('error'),
    fatal: write('fatal'),
    child: () => logger
  };
  return logger;
}

function describeLog(first, second) {
  if (typeof first === 'string') return errorMessage(first);
  const parts = [];
  if (typeof second === 'string') parts.push(second);
  if (first instanceof Error) parts.push(first.message);
  const err = first?.err ?? first?.error;
  if (err?.message) parts.push(err.message);
  if (typeof first?.trace === 'string') parts.push(first.trace.split('\n')[0]);
  return errorMessage(parts.join(': ') || 'no message');
}
