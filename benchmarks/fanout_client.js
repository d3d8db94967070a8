// The load generator of the fanout benchmark (run by benchmarks/fanout.py): C socket.io-client
// connections (websocket transport only) in this one Node process, opened in batches; each
// joins room "chat" (acknowledged). Client 0 is the sender: it emits `send` with a sequence
// number and its send time, keeping a fixed window of messages in flight — a message leaves
// the window when all C clients have received it, and the next one is sent at once (a closed
// loop: the offered rate follows what the server can deliver). With --rate R > 0 it sends
// instead at a fixed offered rate of R deliveries/s (R / C messages/s, paced every
// millisecond), whatever the server keeps up with. After a warm-up, deliveries and
// latencies (receive time - send time, one clock since every client lives in this process) are
// counted for `duration` seconds. Prints one JSON object per line on stdout: "connected",
// "measure_start", "measure_end", then "result".
//
// --client raw swaps socket.io-client for a minimal Socket.IO v5 / Engine.IO v4 client over
// the `ws` package (the same websocket library socket.io-client uses in Node): it answers
// pings, connects to namespace "/", sends events and acks, and parses each received event with
// one JSON.parse; lighter, for when socket.io-client is what saturates.
//
// --url may name several servers, comma-separated (processes sharing rooms, e.g. through
// Redis): client i connects to server i mod n, so the clients are split evenly and the sender
// (client 0) is on the first; the result then also gives, per server, its clients' deliveries
// and latencies ("groups").
//
// --stalled N adds N clients (raw, whatever --client says) that connect after the C others,
// join "chat" too, and then stop reading entirely (`ws.pause()`: the socket is no longer
// read, so the kernel's buffers fill and the server sees a client that does not keep up).
// They count in nothing measured: the window and the deliveries are the C normal clients'.
//
// Per-message deflate: off by default (`perMessageDeflate: false`, in both clients). --deflate 1
// makes every client (the stalled ones too) offer it as a real one does: socket.io-client with
// its default (`{ threshold: 1024 }`: it offers the extension and compresses what it sends from
// 1024 bytes on), the raw client with `ws`'s (`perMessageDeflate: true`). Whether the server
// accepted it is counted once connected: "deflated" (of the C clients) and "stalled_deflated"
// in the "connected" and "result" lines.
"use strict";

const { io } = require("socket.io-client");
const WebSocket = require("ws");
const { performance } = require("node:perf_hooks");

function parseArgs(argv) {
  const opts = {
    url: "http://127.0.0.1:3000",
    clients: 50,
    warmup: 1,
    duration: 5,
    inflight: 4000, // deliveries in flight: the window is inflight / clients messages
    batch: 50, // connections opened at a time
    payload: 64, // characters of text in each message
    timeout: 5, // seconds after which a message not received by everyone is given up
    rate: 0, // > 0: offered deliveries/s (open loop) instead of the window (closed loop)
    client: "socket.io", // or "raw"
    stalled: 0, // extra clients that join, then never read again
    deflate: 0, // 1: the clients offer per-message deflate
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    opts[key] = key === "url" || key === "client" ? argv[i + 1] : Number(argv[i + 1]);
  }
  return opts;
}

const opts = parseArgs(process.argv);
const C = opts.clients;
const urls = opts.url.split(",").filter(Boolean);
const text = "x".repeat(opts.payload);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const sockets = [];
const pending = new Map(); // seq -> { left, t }: messages not yet received by every client
let measuring = false;
let sending = false;
let closing = false;
let windowDeliveries = 0;
let totalReceived = 0;
const latencies = urls.map(() => []); // per server, while measuring
const groupDeliveries = urls.map(() => 0);
const stalledSockets = [];
let nextSeq = 0;
let sent = 0;
let givenUp = 0;
let disconnects = 0;
let sender = null;

function sendOne() {
  const seq = nextSeq++;
  const t = performance.now();
  pending.set(seq, { left: C, t });
  sent++;
  sender.emit("send", { seq, t, author: "bench", message: text });
}

function onMessage(msg, group) {
  const now = performance.now();
  totalReceived++;
  if (measuring) {
    windowDeliveries++;
    groupDeliveries[group]++;
    latencies[group].push(now - msg.t);
  }
  const p = pending.get(msg.seq);
  if (p !== undefined && --p.left === 0) {
    pending.delete(msg.seq);
    if (sending && !opts.rate) sendOne();
  }
}

function giveUpStale() {
  const limit = performance.now() - opts.timeout * 1000;
  for (const [seq, p] of pending) {
    if (p.t > limit) break; // insertion order: the rest are younger
    pending.delete(seq);
    givenUp++;
    if (sending && !opts.rate) sendOne();
  }
}

// A Socket.IO client reduced to what the benchmark does, with the socket.io-client calls it uses.
class RawSocket {
  constructor(url) {
    const wsUrl = url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
    this.ws = new WebSocket(wsUrl, { perMessageDeflate: Boolean(opts.deflate) });
    this.handlers = {};
    this.acks = new Map();
    this.nextAck = 0;
    this.ws.on("message", (buf) => this.onFrame(buf.toString()));
    this.ws.on("error", (err) => this.fire("connect_error", err));
    this.ws.on("close", () => this.fire("disconnect"));
  }
  on(event, handler) {
    this.handlers[event] = handler;
  }
  once(event, handler) {
    this.on(event, handler);
  }
  fire(event, arg) {
    const handler = this.handlers[event];
    if (handler) handler(arg);
  }
  onFrame(text) {
    const eio = text.charCodeAt(0);
    if (eio === 52 /* "4": message */) {
      const sio = text.charCodeAt(1);
      if (sio === 50 /* "2": event */) {
        const [event, data] = JSON.parse(text.slice(2));
        this.fire(event, data);
      } else if (sio === 51 /* "3": ack */) {
        const bracket = text.indexOf("[");
        const ack = this.acks.get(Number(text.slice(2, bracket)));
        if (ack) ack(null, ...JSON.parse(text.slice(bracket)));
      } else if (sio === 48 /* "0": connected to "/" */) {
        this.fire("connect");
      }
    } else if (eio === 50 /* "2": ping */) {
      this.ws.send("3");
    } else if (eio === 48 /* "0": open */) {
      this.ws.send("40");
    }
  }
  emit(event, data) {
    this.ws.send("42" + JSON.stringify([event, data]));
  }
  timeout() {
    return {
      emit: (event, data, ack) => {
        const id = this.nextAck++;
        this.acks.set(id, ack);
        this.ws.send(`42${id}` + JSON.stringify([event, data]));
      },
    };
  }
  disconnect() {
    this.ws.close();
  }
}

function connectOne(i) {
  const group = i % urls.length;
  const url = urls[group];
  const handler = (msg) => onMessage(msg, group);
  if (opts.client === "raw") {
    return new Promise((resolve, reject) => {
      const socket = new RawSocket(url);
      socket.on("message", handler);
      socket.on("disconnect", () => {
        if (!closing) disconnects++;
      });
      socket.once("connect_error", reject);
      socket.once("connect", () => {
        socket.timeout().emit("join", "chat", (err) => (err ? reject(err) : resolve(socket)));
      });
      sockets.push(socket);
    });
  }
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      ...(opts.deflate ? {} : { perMessageDeflate: false }), // else engine.io-client's default
      timeout: 30000,
    });
    socket.on("message", handler);
    socket.on("disconnect", () => {
      if (!closing) disconnects++;
    });
    socket.once("connect_error", reject);
    socket.once("connect", () => {
      socket.timeout(30000).emit("join", "chat", (err) => (err ? reject(err) : resolve(socket)));
    });
    sockets.push(socket);
  });
}

// A client that joins "chat" and then stops reading: its socket is paused for good.
function connectStalled(i) {
  return new Promise((resolve, reject) => {
    const socket = new RawSocket(urls[i % urls.length]);
    socket.once("connect_error", reject);
    socket.once("connect", () => {
      socket.timeout().emit("join", "chat", (err) => {
        if (err) return reject(err);
        socket.ws.pause();
        resolve(socket);
      });
    });
    stalledSockets.push(socket);
  });
}

// Whether the server accepted per-message deflate on this client's websocket (from `ws`).
function deflated(socket) {
  const ws = socket instanceof RawSocket ? socket.ws : socket.io.engine?.transport?.ws;
  return Boolean(ws && ws.extensions.split(",").includes("permessage-deflate"));
}

async function connectAll(count, connect) {
  for (let i = 0; i < count; i += opts.batch) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + opts.batch); j++) batch.push(connect(j));
    await Promise.all(batch);
  }
}

async function main() {
  const rampStart = performance.now();
  await connectAll(C, connectOne);
  await connectAll(opts.stalled, connectStalled);
  const rampSeconds = (performance.now() - rampStart) / 1000;
  const deflatedCount = sockets.filter(deflated).length;
  const stalledDeflated = stalledSockets.filter(deflated).length;
  say({
    event: "connected",
    clients: C,
    stalled: opts.stalled,
    seconds: rampSeconds,
    deflated: deflatedCount,
    stalled_deflated: stalledDeflated,
  });

  sender = sockets[0];
  const window = Math.max(1, Math.min(500, Math.round(opts.inflight / C)));
  const staleTimer = setInterval(giveUpStale, 100);
  sending = true;
  let pacer = null;
  if (opts.rate) {
    const perMs = opts.rate / C / 1000;
    const paceStart = performance.now();
    let paced = 0;
    pacer = setInterval(() => {
      const due = Math.floor((performance.now() - paceStart) * perMs);
      for (; paced < due && sending; paced++) sendOne();
    }, 1);
  } else {
    for (let i = 0; i < window; i++) sendOne();
  }
  await sleep(opts.warmup * 1000);

  measuring = true;
  const start = performance.now();
  const sentBefore = sent;
  say({ event: "measure_start" });
  await sleep(opts.duration * 1000);
  measuring = false;
  const seconds = (performance.now() - start) / 1000;
  const sentDuring = sent - sentBefore;
  say({ event: "measure_end" });

  sending = false;
  if (pacer) clearInterval(pacer);
  const drainStart = performance.now();
  while (pending.size && performance.now() - drainStart < opts.timeout * 1000) await sleep(10);
  clearInterval(staleTimer);

  const percentiles = (values) => {
    const sorted = Float64Array.from(values).sort();
    return (f) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(f * sorted.length) - 1))] : null);
  };
  const pct = percentiles(latencies.flat());
  const groups = urls.map((url, g) => {
    const gpct = percentiles(latencies[g]);
    return {
      url,
      clients: Math.floor(C / urls.length) + (g < C % urls.length ? 1 : 0),
      deliveries: groupDeliveries[g],
      p50_ms: gpct(0.5),
      p99_ms: gpct(0.99),
    };
  });
  say({
    event: "result",
    clients: C,
    window: opts.rate ? null : window,
    offered_per_s: opts.rate || null,
    seconds,
    deliveries: windowDeliveries,
    deliveries_per_s: windowDeliveries / seconds,
    messages_per_s: sentDuring / seconds,
    p50_ms: pct(0.5),
    p99_ms: pct(0.99),
    sent,
    lost: sent * C - totalReceived,
    given_up: givenUp,
    disconnects,
    ramp_seconds: rampSeconds,
    stalled: opts.stalled,
    deflated: deflatedCount,
    stalled_deflated: stalledDeflated,
    groups: urls.length > 1 ? groups : null,
  });
  closing = true;
  for (const socket of sockets) socket.disconnect();
  for (const socket of stalledSockets) socket.ws.terminate();
  await sleep(200);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`fanout_client: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
