"""Ending a process whose work is done, without the interpreter's teardown.

After ``main`` returns, Python frees every module and object one at a time and PyTorch unloads its
operator libraries: about a second on this project's CPU once torch and transformers are loaded,
a sixth of a short generation run, and none of it writes anything. :func:`end_process` does what
Python's exit does that matters (waits for threads, runs ``atexit`` handlers, flushes the
standard streams) and then ends the process at once; the operating system reclaims the rest.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading


def end_process(code: object = 0) -> None:
    """End the process with ``code`` as ``sys.exit(code)`` would, skipping the teardown.

    Non-daemon threads are waited for and ``atexit`` handlers run (files closed, pools shut down,
    temporary folders removed), then the standard streams are flushed. ``code`` is read as
    ``sys.exit`` reads it: None is 0, another non-integer is printed and is 1.
    """
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe has nothing left to flush
            stream.flush()
    os._exit(status)
