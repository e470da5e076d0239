// What the sidecar writes to stderr about errors and about Baileys: short one-line messages, never the objects
// behind them (they may hold keys or message content).

export function errorMessage(err) {
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
