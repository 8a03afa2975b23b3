# Convenience front end; CMake does the real work.
BUILD ?= build
SAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
# make install: a build without the test-only hooks or the tests, for PREFIX
INSTALL_BUILD ?= build-install
PREFIX ?= /usr/local
DEB_BUILD ?= build-deb
# Per target. A libFuzzer run found the keyholder signing for a scheme its key
# cannot serve after 35 s (1.3M runs) on one core: give every target several
# times that. Targets run FUZZ_JOBS at a time (default: all CPUs).
FUZZ_SECONDS ?= 300
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run test test-asan fuzz clean bench install deb

all: build

deps:
	@scripts/install-deps

# The developer's tree, shared by run, test and bench: with the test-only hooks
# (QS_TEST_HOOKS; inert unless a QS_TEST_* variable or --test-* option is given).
# A plain cmake build, the one users and packagers make, has none
# (docs/ARCHITECTURE.md, "Test-only hooks").
# Configuring again with the same options changes no compile flag (a second
# build compiles nothing; integration/test_rebuild checks it).
configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQS_WERROR=ON -DQS_TEST_HOOKS=ON >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Only the server it runs and the client README's "Trying it" uses next; no tests, no bench.
run: configure
	@cmake --build $(BUILD) -j $(JOBS) --target quicstashd quicstash-send
	$(BUILD)/bin/quicstashd $(ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 $(CTEST_ARGS)

test-asan: deps
	@cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DQS_SANITIZE=ON -DQS_WERROR=ON -DQS_TEST_HOOKS=ON >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ctest --output-on-failure -j 2 $(CTEST_ARGS)

# libFuzzer (clang) on every target in tests/fuzz for FUZZ_SECONDS each, FUZZ_JOBS at once
fuzz: deps
	@scripts/install-deps --fuzz
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQS_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz
	scripts/fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	bench/run

# What users and packagers build: no test-only hooks, no tests. DESTDIR is honoured.
# The unit files get the paths of PREFIX (their directory is systemd's under /usr).
install: deps
	@cmake -S . -B $(INSTALL_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
		-DBUILD_TESTING=OFF >/dev/null
	@cmake --build $(INSTALL_BUILD) -j $(JOBS)
	DESTDIR="$(DESTDIR)" cmake --install $(INSTALL_BUILD)

# The Debian package, built by dpkg-buildpackage in $(DEB_BUILD) (scripts/build-deb).
deb: deps
	scripts/build-deb $(DEB_BUILD)

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD) $(INSTALL_BUILD) $(DEB_BUILD)
