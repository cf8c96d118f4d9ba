"""CPython's cyclic garbage collector, set for a server that allocates in bursts.

The collector makes a young-generation pass every 700 net allocations of container objects,
and every tenth and hundredth pass goes through older generations, up to every object the
process holds (the modules, the confusables table, every open socket's objects). An
authenticated connect allocates a few thousand (Tornado's request and handler, engineio's
socket and environ, the packets), so a connect paid for several passes: about 0.2 ms of its
~1.2 ms of server CPU, measured with `gc.callbacks` on the connect benchmark.

- `gc.freeze()`, once imported and configured: what exists then lives as long as the process
  and is left out of every later pass.
- The young generation's threshold at `YOUNG_THRESHOLD`: one pass per few connects rather
  than several per connect. Cyclic garbage (a future and its exception's traceback, say)
  waits a little longer to be freed: at most that many container objects, a few MiB.

Nothing here changes what is freed, only when: objects without cycles are still freed at once.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # CPython's default is 700
OLDER_THRESHOLDS = (10, 10)  # CPython's defaults: a middle pass per 10 young, an old per 10 middle


def tune_for_serving() -> None:
    """Leave what is alive now out of the collector's passes, and make its passes rarer."""
    gc.collect()  # what is garbage already is freed, not frozen
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
