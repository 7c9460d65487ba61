# swift-libev: the two commands of the README.
#
#   make demo   the package's main job: the tutorial's experiment, every way, a table and a timeline
#   make test   the app package's build and self-test, the documentation (warnings are errors),
#               every Swift snippet of the docs compiled, the public API against API.txt,
#               the allocation guards (release builds), the whole suite, then again under ThreadSanitizer and AddressSanitizer,
#               then a minute of libFuzzer on the HTTP request path, the response parser, the URL resolver
#               and the link extractor (the tests use curl and python3)
#
# Both first install what the package needs from Debian (apt-get, as root or via sudo);
# faketime lets a test jump the wall clock; libcurl4-openssl-dev is for the test that
# runs libcurl on the package's loop; libhiredis-dev and redis-server are for the
# crawler's shared frontier (the tests start redis-server on a free port of their own).

SHELL         := /bin/bash
SWIFT         ?= swift
SWIFTC        ?= swiftc
APT_PACKAGES  := libev-dev libhttp-parser-dev curl faketime libcurl4-openssl-dev libhiredis-dev redis-server libc-ares-dev dnsmasq-base socat ncat libssl-dev openssl zlib1g-dev
# The package's own builds enable its one trait (the EventLoopServices
# product and what it brings: the server's /metrics, ServiceGroup); an app
# that does not enable it resolves none of those packages (Examples/App).
TRAITS        := --traits EventLoopServices
SUDO          := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Our own sources: a warning in any of them fails the build.
OWN_PATHS     := $(CURDIR)/(Sources|Tests|Examples)/

.PHONY: all deps build app service-app docs snippets api api-update allocations test test-debug test-tsan test-asan stress-test fuzz demo tour bench bench-quick bench-build bench-micro clean

all: build

deps:
	@missing=""; \
	for package in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing$$missing from Debian"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Builds everything (tests included) and fails on any warning in the package's own code.
build: deps
	@set -o pipefail; $(SWIFT) build $(TRAITS) --build-tests 2>&1 | tee .build-log.txt
	@if grep -E "^$(OWN_PATHS).*warning:" .build-log.txt; then \
	  echo "make: the warnings above are errors here"; exit 1; fi
	@# The standard library's Mutex is a futex ThreadSanitizer cannot see:
	@# every value it guards would be reported as a race (LockedValue instead).
	@if grep -rnE "\bMutex\s*[<(]" Sources Examples Tests --include=*.swift | grep -vE "^[^:]+:[0-9]+:\s*//"; then \
	  echo "make: use LockedValue, not Mutex (ThreadSanitizer cannot see Mutex's lock)"; exit 1; fi

test: build app service-app docs snippets api allocations test-debug test-tsan test-asan fuzz

test-debug:
	$(SWIFT) test $(TRAITS) --disable-xctest

test-tsan: deps
	$(SWIFT) test $(TRAITS) --disable-xctest --sanitize=thread --scratch-path .build-tsan

test-asan: deps
	$(SWIFT) test $(TRAITS) --disable-xctest --sanitize=address --scratch-path .build-asan

# The suite under load: one busy process per core beside it, run after run,
# until STRESS_PASSES runs in a row have passed (at most STRESS_RUNS runs);
# every failure of every run is listed with its log (.build-stress/run-N.log).
# About 6 minutes a run here. Not part of `make test`: a flaky test found
# here is a defect, fixed with the test made independent of the scheduling.
STRESS_RUNS   ?= 10
STRESS_PASSES ?= 5
stress-test: build
	python3 Tests/Stress/stress_test.py --traits EventLoopServices --runs $(STRESS_RUNS) --until-passes $(STRESS_PASSES) $(STRESS_ARGS)

# The allocation guards: heap allocations per timer, readiness callback,
# async round trip and keep-alive HTTP request, counted in release builds by
# a preloaded malloc counter, against ceilings that fail on any regression
# (Tests/AllocationCounter/allocation_guard.py); then the misuse traps of
# the release build, each of which must print its message
# (Tests/ReleaseChecks/misuse_messages.py).
allocations: deps
	mkdir -p .build-alloc
	gcc -O2 -shared -fPIC -o .build-alloc/malloc_counter.so Tests/AllocationCounter/malloc_counter.c
	$(SWIFT) build $(TRAITS) -c release --product server
	$(SWIFT) build $(TRAITS) -c release --product EVTestHelper
	python3 Tests/AllocationCounter/allocation_guard.py --counter .build-alloc/malloc_counter.so \
	  --helper .build/release/EVTestHelper --server .build/release/server
	python3 Tests/ReleaseChecks/misuse_messages.py .build/release/EVTestHelper

# Examples/App: a package of its own that links EV and EventCore as an app
# does. Built (warnings fail it) and self-tested; it must resolve nothing
# but swift-system (not the examples' swift-argument-parser, nor what the
# EventLoopServices trait brings).
app: deps
	@rm -f Examples/App/Package.resolved
	@set -o pipefail; $(SWIFT) build --package-path Examples/App --scratch-path $(CURDIR)/.build-app 2>&1 \
	  | tee .build-app-log.txt
	@if grep -E "^$(CURDIR)/Examples/App/.*warning:" .build-app-log.txt; then \
	  echo "make: the warnings above are errors here"; exit 1; fi
	@if grep -E '"identity"' Examples/App/Package.resolved | grep -v '"swift-system"'; then \
	  echo "make: Examples/App resolved the package above: a consumer of the loops must resolve swift-system only"; exit 1; fi
	$(CURDIR)/.build-app/debug/echo-app --self-test

# Examples/ServiceApp: a package of its own that enables the
# EventLoopServices trait and runs the loops the Swift server ecosystem's
# way (ServiceLifecycle, swift-log, swift-metrics). Built (warnings fail it)
# and self-tested: echoes, the loops' numbers, a real SIGTERM.
service-app: deps
	@set -o pipefail; $(SWIFT) build --package-path Examples/ServiceApp --scratch-path $(CURDIR)/.build-service-app 2>&1 \
	  | tee .build-service-app-log.txt
	@if grep -E "^$(CURDIR)/Examples/ServiceApp/.*warning:" .build-service-app-log.txt; then \
	  echo "make: the warnings above are errors here"; exit 1; fi
	$(CURDIR)/.build-service-app/debug/echo-service --self-test

# The DocC documentation of EV, EventCore and Epoll, combined, with every
# warning (a broken symbol link, a missing article) an error. Open
# .build-docs/swift-libev.doccarchive with `docc preview`, or add
# --transform-for-static-hosting to publish it.
docs: deps
	mkdir -p $(CURDIR)/.build-docs
	$(SWIFT) package $(TRAITS) --allow-writing-to-directory $(CURDIR)/.build-docs generate-documentation \
	  --target EV --target EventCore --target Epoll --target Resolver --target TLS --target EventLoopServices --target EventLoopTesting --enable-experimental-combined-documentation \
	  --warnings-as-errors --output-path $(CURDIR)/.build-docs/swift-libev.doccarchive
	@test -d $(CURDIR)/.build-docs/swift-libev.doccarchive/data || \
	  { echo "make: the combined documentation archive was not written"; exit 1; }

# Every Swift snippet of the README and the DocC catalogs, compiled as a
# consumer's code (a package of its own in .build-snippets that links the
# products): Rust's doctests, so the docs cannot drift from the API.
snippets: deps
	python3 Tests/Docs/check_snippets.py

# The public API of EV, EventCore and Epoll against API.txt: a change to
# the surface fails here until API.txt is updated with it (make api-update)
# and the diff reviewed.
api: deps
	python3 Tests/API/public_api.py

api-update: deps
	python3 Tests/API/public_api.py --update

# libFuzzer on the server's request path, the crawler's response parser, its
# URL resolver and its link extractor: Fuzz/HTTPFuzzer.swift with the sources
# of Examples/HTTP, under AddressSanitizer, one binary run once per target
# (FUZZ_TARGET), FUZZ_SECONDS each. Fuzz/corpus/TARGET seeds it; a crasher
# lands in .build-fuzz/TARGET-crash-*.
FUZZ_SECONDS  ?= 15
FUZZ_TARGETS  := request response url links
fuzz: deps
	@mkdir -p .build-fuzz
	@if ! $(SWIFTC) -parse-as-library -module-name HTTPFuzz -package-name swift_libev -sanitize=fuzzer,address -swift-version 6 \
	    -I CHTTPParser -I CZlib Examples/HTTP/*.swift Fuzz/HTTPFuzzer.swift -o .build-fuzz/http-fuzz \
	    > .build-fuzz/build-log.txt 2>&1; then \
	  grep -v "Cannot export local symbol" .build-fuzz/build-log.txt; exit 1; fi
	@for target in $(FUZZ_TARGETS); do \
	  mkdir -p .build-fuzz/corpus-$$target; \
	  echo "make: fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  FUZZ_TARGET=$$target SWIFT_BACKTRACE=enable=no .build-fuzz/http-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    -timeout=10 -print_final_stats=1 -artifact_prefix=.build-fuzz/$$target- .build-fuzz/corpus-$$target Fuzz/corpus/$$target \
	    || exit 1; \
	done

# The tutorial's experiment: three slow poetry servers, the crawler in all
# eight ways, a table and a timeline. A chunk every 0.2 s keeps it under a
# minute; `crawler --delay 0.7` is the tutorial's own setup (about 2 minutes).
DEMO_DELAY    ?= 0.2
demo: deps
	$(SWIFT) build $(TRAITS) -c release --product crawler
	.build/release/crawler --way all --delay $(DEMO_DELAY) --timeline poetry-timeline.svg

# A tour of libev's watchers at work.
tour: deps
	$(SWIFT) run $(TRAITS) -c release ev-tour

clean:
	rm -rf .build .build-tsan .build-asan .build-app .build-service-app .build-docs .build-alloc .build-fuzz .build-snippets \
	  .build-stress .build-bench-* .build-log.txt .build-app-log.txt .build-service-app-log.txt Benchmarks/.build

# Benchmarks (a nested package): everything built first in release (nothing
# compiles during the run), then Benchmarks/scripts/bench.py runs the micro
# benchmarks, HTTP with wrk beside C libev, C epoll and SwiftNIO, idle memory,
# the crawler and the poetry engines, and writes Benchmarks/RESULTS.md and
# Benchmarks/results/*.svg (about 13 minutes here with the build; bench-quick about 1).
# A clean build of the nested package each time: SwiftPM does not notice
# files added to the parent package it depends on by path.
bench: bench-build
	python3 Benchmarks/scripts/bench.py $(BENCH_ARGS)

# The micro benchmarks under package-benchmark (ordo-one/benchmark): the same
# workloads as ev-bench's rows, with its percentiles and malloc counts
# (Benchmarks/Benchmarks/Micro/Micro.swift; about 4 minutes with the build).
bench-micro: deps
	cd Benchmarks && $(SWIFT) package --disable-sandbox benchmark --target Micro --no-progress $(BENCH_ARGS)

bench-quick: bench-build
	python3 Benchmarks/scripts/bench.py --quick $(BENCH_ARGS)

bench-build: deps
	@command -v wrk > /dev/null || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
	@test -x /usr/sbin/nginx || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light
	$(SWIFT) build $(TRAITS) -c release --product server
	$(SWIFT) build $(TRAITS) -c release --product crawler
	$(SWIFT) build $(TRAITS) -c release --product evcat
	rm -rf Benchmarks/.build
	$(SWIFT) build -c release --package-path Benchmarks
