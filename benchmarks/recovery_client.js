// The load generator of the recovery benchmark (run by benchmarks/recovery.py): N
// socket.io-client connections (websocket transport only) in this one Node process, opened in
// batches, each joining room "r" (acknowledged), and one more, the control connection, in no
// room, that asks the server for its figures (`stats`) and to broadcast (`burst`).
//
// 1. The server broadcasts one `hello` to "r" (so that every client holds an offset, as a
//    client that has been receiving does); all N receive it.
// 2. Every client's connection is closed at once as a network loss would
//    (`socket.io.engine.close()`): socket.io-client then reconnects by itself after
//    `reconnectionDelay` (`--away` ms, without randomization, so all come back together).
// 3. Once the server counts N absent connections, it broadcasts `--messages` events `m` to "r"
//    (`{seq, text}`, `--payload` characters of text), none of which reaches anyone.
// 4. The clients reconnect; each must come back with `socket.recovered === true`, its old
//    `socket.id`, and receive every `m`, in order (seq 0, 1, ...), once each.
//
// Prints one JSON object per line on stdout: "connected", "dropped", "absent", "burst",
// "reconnecting" (the first reconnect attempt), "complete" (every client recovered and
// complete, or the timeout), then "result".
"use strict";

const { io } = require("socket.io-client");
const { performance } = require("node:perf_hooks");

function parseArgs(argv) {
  const opts = {
    url: "http://127.0.0.1:3000",
    clients: 1000,
    messages: 100,
    away: 5000, // ms: reconnectionDelay (and Max), no randomization
    batch: 50, // connections opened at a time
    payload: 100, // characters of text in each missed message
    timeout: 60, // s to wait, from the first reconnect attempt, for every client to be complete
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    opts[key] = key === "url" ? argv[i + 1] : Number(argv[i + 1]);
  }
  return opts;
}

const opts = parseArgs(process.argv);
const N = opts.clients;
const M = opts.messages;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const now = () => performance.now();

let phase = "connecting"; // then "warm", "away", "done"
const clients = [];
let firstAttempt = null;
let lastAttempt = null;
let attempts = 0;
let connectErrors = 0;
let completeCount = 0;
let allComplete = null; // resolved when every client is complete
const completion = new Promise((resolve) => (allComplete = resolve));

function maybeComplete(c) {
  if (c.completeAt !== null || c.reconnectedAt === null || c.distinct < M) return;
  c.completeAt = now();
  if (++completeCount === N) allComplete();
}

function connectOne(i) {
  return new Promise((resolve, reject) => {
    const socket = io(opts.url, {
      transports: ["websocket"],
      forceNew: true,
      perMessageDeflate: false,
      reconnectionDelay: opts.away,
      reconnectionDelayMax: opts.away,
      randomizationFactor: 0,
      timeout: 60000,
    });
    const c = {
      socket,
      id: null,
      hello: 0,
      seen: new Uint8Array(M),
      next: 0, // the seq expected next
      distinct: 0,
      duplicates: 0,
      outOfOrder: 0,
      reconnectedAt: null,
      completeAt: null,
      recovered: null,
      sameId: null,
      disconnects: 0,
    };
    clients.push(c);
    socket.on("hello", () => c.hello++);
    socket.on("m", (data) => {
      // (What arrives with the connect reply is handled just before "connect" fires.)
      const seq = data && data.seq;
      if (!Number.isInteger(seq) || seq < 0 || seq >= M) {
        c.outOfOrder++;
        return;
      }
      if (c.seen[seq]) {
        c.duplicates++;
        return;
      }
      if (seq !== c.next) c.outOfOrder++;
      c.seen[seq] = 1;
      c.distinct++;
      c.next = seq + 1;
      if (c.reconnectedAt === null) return;
      maybeComplete(c);
    });
    socket.on("disconnect", () => c.disconnects++);
    socket.on("connect_error", (err) => {
      if (phase === "connecting") reject(err);
      else connectErrors++;
    });
    socket.io.on("reconnect_attempt", () => {
      const t = now();
      attempts++;
      if (firstAttempt === null) {
        firstAttempt = t;
        say({ event: "reconnecting" });
      }
      lastAttempt = t;
    });
    socket.on("connect", () => {
      if (phase === "connecting" && c.id === null) {
        c.id = socket.id;
        socket.timeout(60000).emit("join", "r", (err) => (err ? reject(err) : resolve(c)));
        return;
      }
      if (phase !== "away" || c.reconnectedAt !== null) return;
      c.reconnectedAt = now();
      c.recovered = socket.recovered === true;
      c.sameId = socket.id === c.id;
      maybeComplete(c);
    });
  });
}

async function connectAll() {
  for (let i = 0; i < N; i += opts.batch) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + opts.batch); j++) batch.push(connectOne(j));
    await Promise.all(batch);
  }
}

function call(control, event, data) {
  return new Promise((resolve, reject) =>
    control.timeout(60000).emit(event, data, (err, value) => (err ? reject(err) : resolve(value))),
  );
}

async function waitFor(check, ms, what) {
  const deadline = now() + ms;
  for (;;) {
    if (await check()) return;
    if (now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function main() {
  const control = io(opts.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  await new Promise((resolve, reject) => {
    control.once("connect", resolve);
    control.once("connect_error", reject);
  });
  const rampStart = now();
  await connectAll();
  const rampSeconds = (now() - rampStart) / 1000;

  phase = "warm";
  await call(control, "burst", { event: "hello", count: 1, payload: 0 });
  await waitFor(() => clients.every((c) => c.hello === 1), 30000, "every client's hello");
  const before = await call(control, "stats");
  say({ event: "connected", clients: N, seconds: rampSeconds, stats: before });

  phase = "away";
  const dropped = now();
  for (const c of clients) c.socket.io.engine.close(); // a network loss, for each at once
  say({ event: "dropped" });
  let away = null;
  await waitFor(
    async () => {
      away = await call(control, "stats");
      return away.absent >= N;
    },
    Math.max(10000, opts.away),
    "the server to count every client absent",
  );
  const absentAt = now();
  say({ event: "absent", ms: absentAt - dropped, stats: away });

  const burstStart = now();
  const burst = await call(control, "burst", { event: "m", count: M, payload: opts.payload });
  const burstEnd = now();
  say({ event: "burst", ms: burstEnd - burstStart, stats: burst });

  // Every client reconnects by itself after `away` ms; wait for all to be complete.
  await waitFor(() => firstAttempt !== null, opts.away + 30000, "a reconnect attempt");
  const timedOut = await Promise.race([
    completion.then(() => false),
    sleep(opts.timeout * 1000).then(() => true),
  ]);
  const end = now();
  say({ event: "complete", all: !timedOut });
  await sleep(300); // anything arriving late (a duplicate) is still counted
  const after = await call(control, "stats");
  phase = "done";

  const times = (key) =>
    clients
      .filter((c) => c[key] !== null)
      .map((c) => c[key] - firstAttempt)
      .sort((a, b) => a - b);
  const median = (values) => (values.length ? values[Math.floor((values.length - 1) / 2)] : null);
  const reconnected = times("reconnectedAt");
  const complete = times("completeAt");
  const sum = (f) => clients.reduce((total, c) => total + f(c), 0);
  const replayed = sum((c) => c.distinct);
  const lastComplete = complete.length ? complete[complete.length - 1] : end - firstAttempt;
  say({
    event: "result",
    clients: N,
    messages: M,
    ramp_seconds: rampSeconds,
    timed_out: timedOut,
    reconnected: reconnected.length,
    recovered: clients.filter((c) => c.recovered === true).length,
    same_id: clients.filter((c) => c.sameId === true).length,
    complete: complete.length,
    duplicates: sum((c) => c.duplicates),
    out_of_order: sum((c) => c.outOfOrder),
    missing: sum((c) => M - c.distinct),
    replayed,
    attempts,
    connect_errors: connectErrors,
    extra_disconnects: sum((c) => Math.max(0, c.disconnects - 1)),
    away_ms: firstAttempt - dropped,
    absent_after_ms: absentAt - dropped,
    burst_ms: burstEnd - burstStart,
    burst_done_before_reconnect: burstEnd < firstAttempt,
    attempts_spread_ms: lastAttempt - firstAttempt,
    recovered_s: reconnected.length ? reconnected[reconnected.length - 1] / 1000 : null,
    recovered_median_s: median(reconnected) === null ? null : median(reconnected) / 1000,
    complete_s: complete.length ? lastComplete / 1000 : null,
    complete_median_s: median(complete) === null ? null : median(complete) / 1000,
    replay_per_s: M && complete.length ? replayed / (lastComplete / 1000) : null,
    stats: { before, away, burst: burst, after },
  });
  for (const c of clients) c.socket.disconnect();
  control.disconnect();
  await sleep(200);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`recovery_client: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
