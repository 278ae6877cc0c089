// A socket.io-client 2.x (Engine.IO v3) driven by tests/test_legacy_sio.py.
// argv: <url> <options as JSON>. Each event it sees is one JSON line on stdout; each line on
// stdin is a command: {"emit": name, "data": ..., "id": n} (the ack comes back as {"ev": "ack",
// "id": n, "data": ...}) or {"close": true}.
"use strict";
const io = require("socket.io-client");
const readline = require("readline");

const [url, optionsJson] = process.argv.slice(2);
const options = Object.assign({ reconnection: false, forceNew: true }, JSON.parse(optionsJson || "{}"));
const out = (ev, extra) => process.stdout.write(JSON.stringify(Object.assign({ ev }, extra)) + "\n");

const socket = io(url, options);
const engine = socket.io.engine;
out("transport", { name: engine.transport.name });
engine.on("upgrade", (transport) => out("upgrade", { name: transport.name }));
socket.on("connect", () => out("connect", { transport: socket.io.engine.transport.name }));
socket.on("error", (data) => out("error", { data }));
socket.on("connect_error", (err) => out("connect_error", { data: String(err && err.message || err) }));
socket.on("disconnect", (reason) => out("disconnect", { reason }));
socket.on("pong", (ms) => out("pong", { ms }));
socket.on("change", (data) => out("change", { data }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.close) {
    socket.close();
    setTimeout(() => process.exit(0), 50);
    return;
  }
  socket.emit(cmd.emit, cmd.data, (answer) => out("ack", { id: cmd.id, data: answer }));
});
