"""A process that holds a batch job's lease, as a `faceme batch` running elsewhere does, for tests:

    python -m engine.testing.lease_holder CATALOG JOB_ID

prints "held" once it owns the job, heartbeats every 0.2 s, and exits when the job is cancelled
elsewhere or its lease is lost (or when killed, which is what the tests usually do)."""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    from engine.catalog.db import open_catalog
    from engine.catalog.leases import hold

    catalog = open_catalog(argv[0])
    with hold(catalog, int(argv[1]), interval=0.2) as keeper:
        print("held", flush=True)
        while not keeper.should_stop():
            time.sleep(0.05)
        print("stopped: cancelled elsewhere" if keeper.cancelled_elsewhere else "stopped: lost", flush=True)
    catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
