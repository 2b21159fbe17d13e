"""Runs a command once and prints its wall time, CPU time and peak RSS (of the child)."""
import resource
import subprocess
import sys
import time

start = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
wall = (time.perf_counter() - start) * 1000
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"wall_ms={wall:.0f}")
print(f"cpu_ms={(usage.ru_utime + usage.ru_stime) * 1000:.0f}")
print(f"max_rss_mb={usage.ru_maxrss / 1024:.1f}")
