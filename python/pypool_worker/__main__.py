"""``python -m pypool_worker``: see :mod:`pypool_worker.cli`.

The guardian (:mod:`pypool_worker.guardian`) forks off first, before any
handler code is imported; only the worker process goes on to :func:`run`.
"""

from pypool_worker import guardian

if __name__ == "__main__":
    guardian.enter()

    from pypool_worker.cli import run

    run()
