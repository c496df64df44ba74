"""``python -m pypool_worker``: see :mod:`pypool_worker.cli`."""

from pypool_worker.cli import run

if __name__ == "__main__":
    run()
