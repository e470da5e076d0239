// The agent's commands (`start`, `lease`, `connect`, `pair`, `send`, `presence`, `read`, `auth_committed`,
// `auth_refused`, `stop`, `logout`), each handled over the sidecar's shared state and its socket.
import { createKeyStore, isLinked, revive } from './auth-store.mjs';
import { errorMessage } from './logging.mjs';

export const DEFAULT_STALE_AFTER_MS = 120000;
// Longer than Baileys' own query timeout (60 s), so its error wins when it has one; every send is answered.
export const SEND_TIMEOUT_MS = 90000;
export const STOP_GRACE_MS = 1000;

// The handlers by command type. `ctx` is the sidecar's shared state (see `runSidecar`), `conn` its socket (see
// `createConnection`).
export function createCommands(ctx, conn) {
  const { baileys, log, emit, finish, pipeline, setTimer, clearTimer } = ctx;
  const { BufferJSON } = baileys;
  const { connect, closeSocket } = conn;

  function handleStart(cmd) {
    if (ctx.started) {
      log('start received twice: ignored');
      return;
    }
    ctx.started = true;
    ctx.options = {
      browser: Array.isArray(cmd.browser) && cmd.browser.length === 3 ? cmd.browser.map(String) : undefined,
      staleAfterMs: Number.isFinite(cmd.staleAfterMs) && cmd.staleAfterMs > 0
        ? cmd.staleAfterMs
        : DEFAULT_STALE_AFTER_MS,
      waWebSocketUrl: typeof cmd.waWebSocketUrl === 'string' ? cmd.waWebSocketUrl : undefined
    };
    const auth = cmd.auth && typeof cmd.auth === 'object' && cmd.auth.creds ? cmd.auth : null;
    ctx.creds = auth ? revive(BufferJSON, auth.creds) : baileys.initAuthCreds();
    ctx.keyStore = createKeyStore({ baileys, initial: auth?.keys, pipeline });
    connect();
  }

  // The agent's tenure, as it renews it: without a new `lease` within `validForMs` the agent may no longer hold the
  // number (frozen, or cut off from the log while another process takes over), so the sidecar closes its socket by
  // itself — the new holder's socket never meets this one — and refuses `connect` until a new `lease` arrives.
  function handleLease(cmd) {
    const ms = Number(cmd.validForMs);
    if (!Number.isFinite(ms) || ms <= 0) {
      log('lease without a positive validForMs: ignored');
      return;
    }
    clearTimer(ctx.leaseTimer);
    ctx.leaseExpired = false;
    ctx.leaseTimer = setTimer(() => {
      ctx.leaseExpired = true;
      if (!ctx.session) return;
      log('the tenure was not renewed in time: closing the socket');
      closeSocket();
      emit({
        type: 'disconnected', code: 0, reason: 'lease_expired',
        message: 'the agent did not renew its tenure in time'
      });
    }, ms);
  }

  function handleConnect() {
    if (ctx.leaseExpired) {
      log('connect after the tenure expired: ignored until a new lease');
      return;
    }
    connect();
  }

  function handlePair(cmd) {
    const phone = String(cmd.phone ?? '').replace(/\D/g, '');
    if (!phone) {
      log('pair without a phone number: ignored');
      return;
    }
    ctx.pairPhone = phone;
    if (ctx.session) conn.requestPairing(ctx.session);
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
    const s = ctx.session;
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
        conn.rememberSent(messageID);
        conn.armStale(s);
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
    ctx.stopping = true;
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
    if (!ctx.creds || !isLinked(ctx.creds)) {
      log('logout before any link: nothing to unlink');
      closeSocket();
      finish(0);
      return;
    }
    ctx.loggingOut = true;
    if (ctx.session?.open) {
      conn.logoutNow(ctx.session);
      return;
    }
    if (!ctx.session) connect();
    if (!ctx.session) finish(1); // the socket could not be made (reported as disconnected)
  }

  function openSession(what) {
    if (ctx.session?.open) return ctx.session;
    log(`${what} while not connected: ignored`);
    return null;
  }

  return {
    start: handleStart,
    lease: handleLease,
    connect: handleConnect,
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
}

function quotedOptions(jid, quoted) {
  if (typeof quoted !== 'string' || quoted === '') return {};
  return { quoted: { key: { remoteJid: jid, id: quoted, fromMe: false }, message: { conversation: '' } } };
}
