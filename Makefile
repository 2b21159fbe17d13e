# The two commands a newcomer needs are `make dry-run` and `make test`; everything else is optional.
SHELL := /bin/bash
SWIFT ?= swift
BIN := .build/debug/myosicam-agent
EXAMPLE_CONF := config/example/agent.conf

.PHONY: deps build dry-run inspect demo test bench bench-daemon bench-commands bench-peers reliability clean release release-check

# Installs the system libraries the build links against, only when they are missing.
deps:
	@./scripts/ensure-deps

build: deps
	$(SWIFT) build

# The agent's main job on the bundled example tree: prints the exact snapshot bytes.
dry-run: build
	$(BIN) --dry-run --config $(EXAMPLE_CONF)

inspect: build
	$(BIN) inspect --config $(EXAMPLE_CONF)

# Every test: Swift units, goldens and end-to-end tests, then the Python tools' own tests.
# -warnings-as-errors keeps the zero-warning rule honest.
test: deps
	$(SWIFT) build --build-tests -Xswiftc -warnings-as-errors
	# The WebIF stand-in suite first, on its own: its async waits need the cooperative thread
	# pool, which the end-to-end suites' blocking waits can hold for minutes on two cores.
	$(SWIFT) test --skip-build --filter WebIfStandInTests
	$(SWIFT) test --skip-build --skip WebIfStandInTests
	python3 -m unittest discover -s tools -p 'test_*.py' -t tools
	MYOSICAM_AGENT_BIN=$(BIN) python3 -m unittest discover -s packaging -p 'test_*.py' -t packaging

# The development panel, the example tree and the agent on loopback (DEMO_SECONDS=30).
demo: build
	./scripts/demo

bench: deps
	./bench/run
	$(MAKE) --no-print-directory bench-peers

# The daemon's steady state against the development panel: 10 minutes at a 1 s heartbeat.
bench-daemon: deps
	./bench/daemon

# apply_config latency, panel queue to result, over 100 commands (median, p99).
bench-commands: deps
	$(SHIPPED_BUILD) --product myosicam-agent >/dev/null
	python3 bench/commands.py "$$($(SHIPPED_BUILD) --show-bin-path)/myosicam-agent" 100

# Footprint against prometheus-node-exporter and collectd (Debian's packages, installed here when
# missing) in the same run: RSS, CPU per hour, start-up, bytes on the wire. PEERS_SECONDS=900 of
# steady state, after PEERS_SETTLE=660 s for the agent's command channel to go quiet.
# It measures the binary operators run: built as `make release` builds it (Swift runtime linked
# in statically, which changes RSS and size), in .build-release unless BENCH_SCRATCH_PATH names
# another build directory, as bench/run does.
PEERS_SECONDS ?= 900
SHIPPED_BUILD = $(SWIFT) build -c release --static-swift-stdlib --scratch-path $(or $(BENCH_SCRATCH_PATH),.build-release)
bench-peers: deps
	@command -v prometheus-node-exporter >/dev/null && command -v collectd >/dev/null \
	    || { $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) apt-get install -y --no-install-recommends prometheus-node-exporter collectd; }
	$(SHIPPED_BUILD) --product myosicam-agent >/dev/null
	mkdir -p bench/out
	python3 bench/peers.py "$$($(SHIPPED_BUILD) --show-bin-path)/myosicam-agent" $(PEERS_SECONDS) > bench/out/peers.md
	cat bench/out/peers.md

# The reliability and security suite (docs/reliability.md): MODE=short (CI) or MODE=long.
MODE ?= short
reliability: deps build
	./reliability/run $(MODE)

# A stripped binary with the Swift runtime linked in, SHA256SUMS and a .deb, in dist/
# (docs/install.md). Its own build dir, so the debug build and benchmarks are not rebuilt.
RELEASE_SCRATCH ?= .build-release
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product myosicam-agent --scratch-path $(RELEASE_SCRATCH)
	./packaging/build-release $(RELEASE_SCRATCH)/release/myosicam-agent dist

# CI: builds the release and checks it: highest GLIBC/GLIBCXX against docs/install.md, the
# Swift runtime linked in, stripped, checksums, the .deb's contents.
release-check: release
	./packaging/check-release dist

clean:
	rm -rf .build
