"""Feed parsing on every core: a fork-server process pool for feedparser's CPU-bound work.

Workers are forked from a server that imported the parsing code once, and exit on their
own if the poller is killed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.context import BaseContext

PARENT_CHECK_SECONDS = 1.0


@contextmanager
def parse_executor(workers: int) -> Iterator[Executor | None]:
    """Feed parsing is CPU-bound (feedparser); with several cores it runs in processes."""
    count = workers or (os.cpu_count() or 1)
    if count <= 1:
        yield None
        return
    pool = ProcessPoolExecutor(
        max_workers=count,
        mp_context=_forkserver(),
        initializer=_exit_with_poller,
        initargs=(os.getpid(),),
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _forkserver() -> BaseContext:
    """Workers forked from a server that imported the parsing code once: no thread of this
    process is forked, and no worker pays for the imports again."""
    context = get_context("forkserver")
    context.set_forkserver_preload(["__main__", "pipeline.poller.normalise"])
    return context


def _exit_with_poller(poller_pid: int) -> None:
    """A parse worker's parent is the fork server, not the poller: if the poller is killed
    (kill -9 leaves no time to shut the pool down), the worker notices and exits, and the
    fork server with it. A Ctrl-C is the poller's to handle: the worker ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            try:
                os.kill(poller_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass  # alive, under another user

    threading.Thread(target=watch, name="poller-watch", daemon=True).start()
