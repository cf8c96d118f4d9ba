"""The shared backend for several processes serving one site: sessions, chat history and
presence in Redis, and events between processes through python-socketio's Redis manager.

- bus.py: one process's Redis client and pub/sub; says once when Redis goes and comes back.
- urls.py: what a --redis-url says (one server, or a primary found through Sentinel), read
  once for every client, and shown without its password; a slip in it is refused at the
  command line, in one line.
- failures.py: what Redis answered at start (a refused password, no such database), said
  as what happened.
- sessions.py: the session store (one Lua script per change).
- presence.py: who is online in the other processes.
- history.py: the chat, in a Redis Stream whose entry ids are the messages' positions.
- values.py: every value read back from Redis checked like client input.

backend.py puts these together (`Backend.redis`); nothing else imports them but urls.py
(the command line, the launcher, the rate limits and the Socket.IO manager read the URL with
it; it imports redis-py only to ask it to read a --redis-url, and only where it is installed),
so the in-memory default needs no Redis client installed.
"""
