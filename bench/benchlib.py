"""What the benchmark scripts share: a loopback port to hand a server, and waiting for a
condition with a deadline (a benchmark that hangs is worse than one that fails)."""
import socket
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout, what, every=0.02):
    """The first true value of `condition()`, polled every `every` s; exits naming `what` after
    `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise SystemExit("bench: timed out waiting for " + what)
