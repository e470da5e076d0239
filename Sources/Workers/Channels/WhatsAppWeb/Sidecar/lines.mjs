// JSON lines on the input: the byte stream split into bounded lines, and each line read as a command.

export const MAX_LINE_BYTES = 4 * 1024 * 1024;

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

// The command on one input line, or null (logged) when the line is not a JSON object with a string `type`.
export function parseCommand(line, log) {
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    // The line itself is never logged: it may hold auth state.
    log(`rejected an input line: not JSON (${Buffer.byteLength(line)} bytes)`);
    return null;
  }
  if (!command || typeof command !== 'object' || typeof command.type !== 'string') {
    log('rejected an input line: not an object with a type');
    return null;
  }
  return command;
}
