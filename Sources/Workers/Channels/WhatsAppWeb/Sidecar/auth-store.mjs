// The auth state as the sidecar holds it: the ordered auth batches handed to the agent, Baileys' key store over
// what the agent has committed, and the wire form of both.

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

// Baileys sets `registered` only for a link made with a pairing code; a QR link leaves it false and sets
// `account` (the signed device identity), as a pairing code link does too.
export function isLinked(value) {
  return Boolean(value.registered || value.account);
}

// JSON as it is on the wire (bytes as `{type:'Buffer', data:<base64>}`) from live values, and back.
export function toWire(BufferJSON, value) {
  return JSON.parse(JSON.stringify(value, BufferJSON.replacer));
}

export function revive(BufferJSON, value) {
  return JSON.parse(JSON.stringify(value), BufferJSON.reviver);
}
