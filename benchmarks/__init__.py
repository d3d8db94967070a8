"""roomcast's benchmarks, each run by hand from the repository root and printing a table.

- `python -m benchmarks.fanout`: end-to-end room broadcast over real websockets (roomcast,
  raw python-socketio and Node's socket.io servers, driven by a Node load generator);
- `python -m benchmarks.core`: in-process fan-out against a bare Python loop;
- `python -m benchmarks.churn`: join/leave/disconnect cost and memory per connection;
- `python -m benchmarks.presence`: join storms, `presence()` at scale, memory per track and
  `app.call` round trips;
- `python -m benchmarks.recovery`: 1,000 clients recovering at once, and what recovery keeps;
- `python -m benchmarks.attacks`: what a hostile client can make the server hold.

Each takes `--help`. The Node side needs `npm ci --prefix benchmarks` once.
"""
