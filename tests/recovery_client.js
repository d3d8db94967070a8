// A socket.io-client (the official one, from the example's node_modules) driven by a test
// over stdin/stdout, one JSON object per line, to check connection-state recovery.
//
//   node tests/recovery_client.js URL [OPTIONS_JSON]   (options for io(), e.g. auth)
//
// It prints {"type": "connect", "id", "recovered"} on each connection, {"type": "event",
// "event", "args"} for each event (args as received: with recovery on, the offset is the last),
// {"type": "ack", "n", "value"} for the answer to an emit, and {"type": "disconnect", "reason"}.
// It reads commands: {"cmd": "emit", "n", "event", "data"}; {"cmd": "drop", "to"?}, which
// closes the underlying connection as a network loss would (the client then reconnects by
// itself, to the URL `to` if given);
// {"cmd": "cut"}, which stops reading and writing without closing (a connection that silently
// died), then drops it after `ms`; {"cmd": "reconnect"}, an explicit disconnect and a new
// connection; {"cmd": "connect"}, a new connection after the server closed it; {"cmd":
// "close"}, an explicit disconnect, after which it exits.

const path = require("node:path");
const readline = require("node:readline");

const { io } = require(
  path.join(__dirname, "..", "examples", "basic_chat", "node_modules", "socket.io-client"),
);

const [url, options] = process.argv.slice(2);
const socket = io(url, {
  transports: ["websocket"],
  reconnectionDelay: 50,
  reconnectionDelayMax: 100,
  ...(options ? JSON.parse(options) : {}),
});

function say(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

socket.on("connect", () =>
  // `_pid` is the private id the server gave: printed for tests that play an attacker.
  say({ type: "connect", id: socket.id, recovered: socket.recovered, pid: socket._pid }),
);
socket.on("disconnect", (reason) => say({ type: "disconnect", reason }));
socket.on("connect_error", (error) => say({ type: "connect_error", message: error.message }));
socket.onAny((event, ...args) => say({ type: "event", event, args }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "emit") {
    socket.emit(command.event, command.data, (value) => say({ type: "ack", n: command.n, value }));
  } else if (command.cmd === "drop") {
    // As a network loss: "transport close", then a reconnection (to `to`, when given: another
    // process, as a load balancer could send it).
    if (command.to) socket.io.uri = command.to;
    socket.io.engine.close();
  } else if (command.cmd === "cut") {
    // The connection goes silent: nothing is read (so the server's events are lost) and no
    // ping is answered, until the server gives up on it; then the client reconnects.
    const ws = socket.io.engine.transport.ws;
    ws.pause?.();
    ws._socket?.pause();
    ws.send = () => {};
    setTimeout(() => socket.io.engine.close(), command.ms ?? 1500);
  } else if (command.cmd === "connect") {
    socket.connect(); // after the server closed it (the client does not reconnect by itself)
  } else if (command.cmd === "reconnect") {
    socket.disconnect(); // asked for: no recovery for this one
    socket.connect();
  } else if (command.cmd === "close") {
    socket.disconnect();
    setTimeout(() => process.exit(0), 50);
  }
});
