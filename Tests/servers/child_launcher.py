"""Runs one server for the Swift tests and kills it when the test process lets go.

Used by `ChildServer` (Tests/TestSupport/ChildServer.swift) for moto_server, the hostile server and
the fault proxy: `python3 child_launcher.py PROGRAM ARGS...`. Children of the test process inherit
its blocked signals, so the launcher unblocks them before starting the server, and kills the server
as soon as its own stdin closes: when `ChildServer.stop()` closes it, or when the test process exits
in any way. No server outlives the test run.
"""

import signal
import subprocess
import sys

signal.pthread_sigmask(signal.SIG_SETMASK, [])
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
try:
    sys.stdin.read()
finally:
    child.kill()
    child.wait()
