"""Everything that reaches into a library's internals, fenced in one room.

The rest of the package uses engineio, python-socketio and Tornado through their public
API and through the classes made here. Each module says which internals it relies on and
why; tests/patches/ checks each of them against the installed libraries, by behaviour where
it can and by signature where it must, so that a new release that moves one fails there,
loudly, rather than somewhere as a leak or a slowdown.

The fence runs one way: nothing here imports from the rest of tornado_app. What a patch needs
of the app (how to read a request's session, the cap on sessions per address with its refusal
words, how a refusal is logged, a Sentinel URL as the app read it) comes in as arguments
from the app's wiring (app.py, sockets.py, backend.py); tests/patches/test_fence.py checks.

- engineio_server.py: engineio's asyncio server (ping tasks freed at once, sessions ended
  without waiting for the client, its `disconnect(sid)` included, which its request handler
  calls when a poll or a POST fails; closed sockets out of `sockets` at once, from the
  'disconnect' event; the app's gate on sessions per address, asked from engineio's 'connect'
  event; the direct write path; the sweep for sockets that stopped answering pings,
  `_service_task`, in one pass a second; what a connect sends, gathered into one write; the
  reader handing a Socket.IO packet to engineio's `handlers['message']` itself, when
  `async_handlers` is off, as engineio's Packet would leave a MESSAGE whose data starts with
  a digit: a string), and `asyncio.Queue._put/_get/get/put_nowait` (counting a socket's unsent
  packets; a future, not a coroutine, for engineio's `poll` to wait on: its `asyncio.wait_for`
  then starts no task).
- managers.py: python-socketio's client manager (a broadcast without a task per recipient,
  a leave in O(1)), and its Redis manager built on it (`_publish` and what it uses:
  `connected`, `_redis_connect`, `redis`, `channel`, `json`: a broadcast that times out, and
  is never sent twice; `_redis_connect`'s `pubsub` and `_redis_listen_with_retries`: when its
  channel is subscribed; `_handle_emit`: told before a broadcast is delivered here).
- sentinel_pool.py: redis-py's asyncio SentinelConnectionPool and BlockingConnectionPool
  joined by inheritance (each calling the other through `super()`), for the bus's pool to a
  primary found through Sentinel that waits for a free connection.
- guard.py: python-socketio's server (malformed packets ignored, a deadline for the
  Socket.IO connect, not armed for a connection already closing, each Engine.IO session
  bound to its web session through python-socketio's `environ`; an unknown event counted
  and still unanswered, through python-socketio's `not_handled`; the manager started before
  the first connection, through `manager_initialized` and the manager's `initialize`; its
  `_handle_connect` within engineio_server.py's `writes_gathered`; once a socket is
  connected, its `environ` cut to what is read again, and its Tornado request's headers and
  query arguments let go of, and its handler's response headers once written: Tornado's
  `RequestHandler._headers` and `_headers_written`; an event's ACK encoded as its Packet
  encodes JSON, in `_handle_event_internal`; an event's `async def` handler, found by
  `_get_event_handler`, awaited in `_trigger_event` as it awaits one).
- query_copy.py: Tornado's `httputil.copy`, the module name through which
  `HTTPServerRequest.__init__` deep-copies a request's query arguments (its one use there).
- queues.py: `asyncio.Queue`'s `_getters`, `_putters`, `_init` and its `_finished` Event's
  `_waiters` (lists instead of empty deques, for the two queues each socket holds).
- websocket.py: engineio's Tornado handler and Tornado's WebSocket connection (bounded
  reading and writing per connection), and what engineio's packet and payload decoding can
  take (`Payload.max_decode_packets`, the JSON it decodes), for the frames and polling
  payloads kept away from it; Tornado's `WebSocketProtocol13._read_bytes` (where its frame
  parser takes its bytes, counting `_wire_bytes_in`) and the handler's
  `get_websocket_protocol` (made here as Tornado makes it, with its `_WebSocketParams`), for
  reading a client's frames a chunk at a time.
- upgrades.py: engineio's Tornado driver (its handler accepts a WebSocket before engineio
  reads the request, and its `open` hands it to `handle_request`, whose refusal it drops)
  and what `handle_request` refuses a WebSocket for, read from engineio's `transports`,
  `sockets` and each socket's `connected` and `upgraded`; and Tornado's HTTP/1 connection
  (`request.connection.close()`, a refused WebSocket's connection closed after its 400);
  websocket.py's handler uses it.
- frames.py: WebSocket frames built once per broadcast (RFC 6455: no internals, but only
  the direct path uses it).
- ../transport.py reaches into nothing, but its query check relies on how engineio reads
  its query (`parse_qs`: blanks dropped, the first value taken) and shapes its sids
  (`generate_id`); tests/patches/test_internals.py checks both.
- environ.py: engineio's `_async['translate_request']` (the environ of each request it
  handles, and which of its keys engineio and python-socketio read), replaced on our server
  by one that builds the same dict for less.
- accept.py: Tornado's HTTPServer accept loop (the listening sockets, and the stream per
  connection), for admission.py.

These were written against the versions setup.cfg pins (python-engineio 4.15, python-socketio
5.18, Tornado 6.6; sentinel_pool.py: redis-py 8.2). To try a newer one: lift its pin in setup.cfg, then
`make test` (it reinstalls when setup.cfg changes); tests/patches/ says what moved.
"""
