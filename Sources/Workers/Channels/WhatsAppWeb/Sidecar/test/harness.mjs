// Runs the sidecar on in-memory streams against the fake Baileys, with a clock and timers the tests drive.
import { PassThrough } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { runSidecar } from '../sidecar.mjs';
import { createFakeBaileys } from './fake-baileys.mjs';

export function fakeClock(start = 1_000_000) {
  let time = start;
  let seq = 0;
  const timers = new Map();
  return {
    now: () => time,
    setTimer(fn, ms) {
      const id = ++seq;
      timers.set(id, { fn, at: time + ms });
      return id;
    },
    clearTimer(id) {
      timers.delete(id);
    },
    pending: () => timers.size,
    // Moves time forward, firing the timers that fall due, in order.
    advance(ms) {
      const target = time + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        time = due[1].at;
        due[1].fn();
      }
      time = target;
    }
  };
}

export function startSidecar({ version = '6.7.23' } = {}) {
  const baileys = createFakeBaileys();
  const input = new PassThrough();
  const output = new PassThrough();
  const clock = fakeClock();
  const events = [];
  const rawLines = [];
  const logs = [];
  const exits = [];
  let pending = '';
  output.on('data', (chunk) => {
    pending += chunk.toString('utf8');
    let newline;
    while ((newline = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      rawLines.push(line);
      events.push(JSON.parse(line)); // throws (fails the test) on anything but one JSON object a line
    }
  });
  runSidecar({
    baileys,
    input,
    output,
    version,
    log: (line) => logs.push(line),
    exit: (code) => exits.push(code),
    now: clock.now,
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer
  });

  const harness = {
    baileys, input, output, clock, events, rawLines, logs, exits,
    get sock() {
      return baileys.lastSocket;
    },
    // Writes one command line and lets the sidecar handle it.
    async send(command) {
      input.write(JSON.stringify(command) + '\n');
      await settle();
    },
    ofType: (type) => events.filter((e) => e.type === type),
    last: (type) => events.filter((e) => e.type === type).at(-1),
    // Starts with `auth` (null: a new link) and waits for the socket.
    async start(auth = null, extra = {}) {
      await harness.send({
        type: 'start', account: 'acct', auth, browser: ['Switchboard', 'Chrome', '1.0'], staleAfterMs: 120000,
        ...extra
      });
      return baileys.lastSocket;
    },
    // Starts and opens the socket (a linked session).
    async startOpen(auth = null, extra = {}) {
      const sock = await harness.start(auth, extra);
      sock.open();
      await settle();
      await harness.ackAll();
      return sock;
    },
    // Acknowledges every auth batch not acknowledged yet, in order.
    async ackAll() {
      for (;;) {
        const open = harness.ofType('auth').filter((e) => !harness.acked.has(e.batch));
        if (open.length === 0) return;
        for (const e of open) {
          harness.acked.add(e.batch);
          await harness.send({ type: 'auth_committed', batch: e.batch });
        }
      }
    },
    acked: new Set()
  };
  return harness;
}

// Lets streams, promises and next ticks run.
export async function settle(turns = 5) {
  for (let i = 0; i < turns; i++) await nextTurn();
}

// Waits until `predicate` holds (streams deliver asynchronously), failing after `turns` turns.
export async function until(predicate, turns = 200) {
  for (let i = 0; i < turns; i++) {
    if (predicate()) return;
    await nextTurn();
  }
  throw new Error('condition not reached');
}
