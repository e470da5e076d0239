#!/usr/bin/env node
// The sidecar's executable entry: loads Baileys (installed next to this file by the agent) and runs the sidecar on
// stdio. Exit codes: 0 stopped (or stdin closed), 1 failure (a failed logout, an uncaught exception), 3 Baileys
// missing, 4 an auth batch refused.
import { createRequire } from 'node:module';
import { runSidecar } from './sidecar.mjs';

const log = (line) => process.stderr.write(line + '\n');

async function loadBaileys() {
  try {
    return await import('baileys');
  } catch (err) {
    const missing = err?.code === 'ERR_MODULE_NOT_FOUND' && /'baileys'/.test(String(err.message));
    log('baileys is not installed: run the agent\'s installer' + (missing ? '' : ` (load failed: ${err?.message})`));
    process.exit(3);
  }
}

// Baileys exports no version of its own; its package.json has one (the package has no `exports` map to hide it).
function installedVersion() {
  try {
    return createRequire(import.meta.url)('baileys/package.json').version ?? null;
  } catch {
    return null;
  }
}

// Baileys starts work it does not always await; a stray rejection is logged, not fatal. An uncaught exception
// leaves the socket in an unknown state: exit, the agent restarts us.
const brief = (err) => String(err?.message ?? err).replace(/\s+/g, ' ').slice(0, 300);
process.on('unhandledRejection', (reason) => log(`unhandled rejection: ${brief(reason)}`));
process.on('uncaughtException', (err) => {
  log(`uncaught exception: ${brief(err)}`);
  process.exit(1);
});

const baileys = await loadBaileys();
runSidecar({
  baileys,
  version: installedVersion(),
  input: process.stdin,
  output: process.stdout,
  log,
  exit: (code) => process.exit(code)
});
