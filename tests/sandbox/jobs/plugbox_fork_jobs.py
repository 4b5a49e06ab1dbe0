"""Jobs that look at what a run child inherited from the zygote's fork (test_zygote_fork.py)."""

import logging
import random
import threading


def interpreter_state(ctx):
    """What a fork that skipped CPython's Python-level hooks could have left wrong."""
    results = []
    worker = threading.Thread(target=lambda: results.append(threading.current_thread().name))
    worker.start()
    worker.join(5)
    handler = logging.StreamHandler()
    logging.getLogger("plugbox-fork-test").addHandler(handler)
    logging.getLogger("plugbox-fork-test").warning("logging works")
    return {
        "random": random.random(),
        "main_thread_is_current": threading.current_thread() is threading.main_thread(),
        "thread_ran": bool(results),
        "threads_now": threading.active_count(),
    }
