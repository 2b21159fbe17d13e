"""The peer for the parse benchmark: Python's configparser on the same oscam.user.

strict=False because oscam.user repeats [account] (configparser then merges the sections: it does
less work than the agent's model, which keeps every line and every record)."""
import configparser
import resource
import statistics
import sys
import time

path, repeat = sys.argv[1], int(sys.argv[2])
text = open(path, encoding="utf-8").read()
times = []
for _ in range(repeat):
    start = time.perf_counter()
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(text)
    times.append((time.perf_counter() - start) * 1000)
print(f"parse_ms_median={statistics.median(times):.1f}")
print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
