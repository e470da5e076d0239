// Switchboard's WhatsApp Web sidecar: one Baileys socket (a linked device), driven by the agent over JSON lines
// (commands on `input`, events on `output`; the protocol is in docs/channels.md). Baileys comes in as an object
// (its module's exports) so everything here runs against a fake in the tests.
//
// The sidecar decides nothing on its own: it never reconnects, never stores anything, and exits when told to or
// when its input closes. Every auth write of the socket is handed to the agent and waited for.
//
// This module wires the parts together: `lines.mjs` (the input lines), `commands.mjs` (the agent's commands),
// `connection.mjs` (the socket, its events and liveness), `auth-store.mjs` (auth batches and the key store),
// `messages.mjs` (message and receipt events) and `logging.mjs` (stderr).
import { createAuthPipeline } from './auth-store.mjs';
import { createCommands } from './commands.mjs';
import { createConnection } from './connection.mjs';
import { MAX_LINE_BYTES, createLineReader, parseCommand } from './lines.mjs';
import { errorMessage } from './logging.mjs';

export { createAuthPipeline, createKeyStore } from './auth-store.mjs';
export { DEFAULT_STALE_AFTER_MS, SEND_TIMEOUT_MS, STOP_GRACE_MS } from './commands.mjs';
export { reasonName } from './connection.mjs';
export { MAX_LINE_BYTES, createLineReader } from './lines.mjs';
export { makeBaileysLogger } from './logging.mjs';
export { readText, toMessageEvent, unwrapContent } from './messages.mjs';

export function runSidecar({
  baileys, input, output, log, exit, version = null, now = Date.now, setTimer = setTimeout,
  clearTimer = clearTimeout
}) {
  // What the parts share: the injected means, and the state they read and write.
  const ctx = {
    baileys, log, emit, finish, now, setTimer, clearTimer,
    pipeline: createAuthPipeline({ emit, onIdle: () => { if (ctx.stopping) finish(0); } }),
    exited: false,
    stopping: false,
    started: false,
    options: null, // from `start`: browser, staleAfterMs, waWebSocketUrl
    creds: null,
    keyStore: null,
    session: null, // the current socket: { sock, open, qrCount, pairingAsked, loggingOut }
    pairPhone: null, // a `pair` waiting for the socket to be up
    loggingOut: false // a `logout` waiting for the socket to open
  };
  const conn = createConnection(ctx);
  const COMMANDS = createCommands(ctx, conn);

  function emit(event) {
    if (!ctx.exited) output.write(JSON.stringify(event) + '\n');
  }

  function finish(code) {
    if (ctx.exited) return;
    ctx.exited = true;
    conn.cancelStale();
    exit(code);
  }

  // --- input -------------------------------------------------------------------------------------------------

  const reader = createLineReader({
    onLine: handleLine,
    onReject: () => log(`rejected an input line over ${MAX_LINE_BYTES} bytes`)
  });
  input.on('data', (chunk) => { if (!ctx.exited) reader.push(chunk); });
  // The agent died or stopped us: nobody can acknowledge anything any more.
  const onInputGone = () => { if (!ctx.exited) { conn.closeSocket(); finish(0); } };
  input.on('end', onInputGone);
  input.on('close', onInputGone);
  input.on('error', (err) => { log(`input error: ${err.message}`); onInputGone(); });
  output.on?.('error', (err) => { log(`output error: ${err.message}`); conn.closeSocket(); finish(0); });

  function handleLine(line) {
    if (ctx.exited || line.trim() === '') return;
    const command = parseCommand(line, log);
    if (!command) return;
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

  emit({ type: 'ready', version: version ?? undefined, node: process.version });
}
