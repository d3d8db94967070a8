// The Node socket.io 4.8 server of the fanout benchmark, with the same two routes as the
// Python servers: `join` (room name, acknowledged with "ok") and `send` (payload broadcast as
// `message` to room `chat`, the sender included). Listens on a free 127.0.0.1 port and prints
// {"port": N} once it accepts connections. Run by benchmarks/fanout.py.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const httpServer = http.createServer();
const io = new Server(httpServer, { serveClient: false }); // perMessageDeflate is off by default

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack("ok");
  });
  socket.on("send", (data) => {
    io.to("chat").emit("message", data);
  });
});

httpServer.listen({ port: 0, host: "127.0.0.1", backlog: 2048 }, () => {
  process.stdout.write(JSON.stringify({ port: httpServer.address().port }) + "\n");
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
