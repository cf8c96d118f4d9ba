"""The shared backend for several processes serving one site: sessions, chat history and
presence in Redis, and events between processes through python-socketio's Redis manager.

- bus.py: one process's Redis client and pub/sub; says once when Redis goes and comes back.
- urls.py: what a --redis-url says (one server, or a primary found through Sentinel), read
  once for every client, and shown without its password.
- sessions.py: the session store (one Lua script per change).
- presence.py: who is online in the other processes.
- history.py: the chat, in a Redis Stream whose entry ids are the messages' positions.
- values.py: every value read back from Redis checked like client input.

backend.py puts these together (`Backend.redis`); nothing else imports them but urls.py
(the command line, the launcher, the rate limits and the Socket.IO manager read the URL with
it; it imports no redis-py), so the in-memory default needs no Redis client installed.
"""
