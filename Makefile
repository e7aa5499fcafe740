# composefs-cpp: the two commands of the README, and their parts.
#   make demo   install missing packages, build, run the demo on demo/rootfs
#   make test   install missing packages, build, run every test (also under ASan/UBSan)
#   make build  install missing packages (or say which), build (Release); the
#               tools land in build/bin/
#   make e2e    the long VM suites (label e2e: the 6.1 and 6.12 rows of the
#               kernel matrix, the UKI smoke boot, the full chain on Debian with
#               systemd), after make test, which ran the 7.x row and the minimal
#               chain (on 6.12)
#   make lint   clang-format and clang-tidy (.clang-tidy) over the sources
#   make install [PREFIX=/usr/local] [DESTDIR=]  tools, headers, libraries,
#               CMake package and pkg-config file (mount.composefs in /sbin)
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
# Evaluated when a configure runs, i.e. after `deps` may have installed ninja.
CMAKE_GEN   = $(shell command -v ninja >/dev/null 2>&1 && echo -G Ninja)
PREFIX     ?= /usr/local

.PHONY: all deps build build-asan test test-release test-asan e2e demo bench fuzz format lint \
        install clean cross-aarch64

all: build

deps:
	@scripts/install-deps.sh

# A build directory counts as configured only once cmake succeeded there
# (the stamp): a failed configure (a package missing) leaves a CMakeCache.txt
# but no build files, and is removed, so that the next run configures again
# from scratch (also with another generator) instead of failing on the
# missing build.ninja.  tests/make_fresh_test.sh checks both.
configure = { cmake -S . -B $(1) $(CMAKE_GEN) $(2) && touch $(1)/.configured; } || \
	  { rm -f $(1)/CMakeCache.txt $(1)/.configured; \
	    echo "error: configuring $(1) failed (missing packages? run 'make deps' as root)" >&2; \
	    exit 1; }

RELEASE_CMAKE_ARGS := -DCMAKE_BUILD_TYPE=Release -DCFS_WERROR=ON
$(BUILD)/.configured: | deps
	@$(call configure,$(BUILD),$(RELEASE_CMAKE_ARGS))

build: deps $(BUILD)/.configured
	cmake --build $(BUILD) -j $(JOBS)

# -O1 -g1: what sanitizer builds are usually run at (full line numbers in
# reports); -O2 -g took twice as long to build, which CI time cannot afford.
ASAN_CMAKE_ARGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
	  -DCFS_WERROR=ON -DCFS_SANITIZE=address,undefined
$(ASAN_BUILD)/.configured: | deps
	@$(call configure,$(ASAN_BUILD),$(ASAN_CMAKE_ARGS))

build-asan: deps $(ASAN_BUILD)/.configured
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The 6.1 and 6.12 VM rows (label e2e) are left to make e2e.  The sanitizer run covers
# our code, not the oracles around it: it leaves out what runs in qemu (the
# kernel matrix and the UKI boot: sanitized tools under TCG only double their
# time), the libselinux oracle over a whole Debian tree (selinux_test covers
# the same matcher), the man page and README checks, the compile checks and
# the install test, the podman example and the initramfs builds (dracut and
# mkinitramfs, which only package files), each of which the release run has
# already done.
ASAN_SKIP_LABELS := vm|oracle|man|install|compile|example|initramfs
test-release: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure -LE e2e

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest -j $(JOBS) --output-on-failure -LE '$(ASAN_SKIP_LABELS)'

test: deps
	$(MAKE) test-release
	$(MAKE) test-asan

# The long VM suites, one after another: what `make test` leaves out
# (label e2e).  `ctest -L vm-matrix` runs every row of the kernel matrix.
e2e: deps build
	cd $(BUILD) && ctest --output-on-failure -L e2e

demo: deps build
	@scripts/demo.sh $(BUILD)

# aarch64: the image modules cross-built with Debian's cross compiler against
# extracted arm64 packages, their tests run under qemu-user (README).
CROSS_BUILD ?= build-aarch64
cross-aarch64: deps
	JOBS=$(JOBS) scripts/cross-aarch64.sh $(CROSS_BUILD)

FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run.sh image_reader $(FUZZ_SECONDS)
	fuzz/run.sh dump_parser $(FUZZ_SECONDS)
	fuzz/run.sh oci_layer $(FUZZ_SECONDS)
	fuzz/run.sh selinux_policy $(FUZZ_SECONDS)
	fuzz/run.sh kargs $(FUZZ_SECONDS)
	fuzz/run.sh pe_reader $(FUZZ_SECONDS)
	fuzz/run.sh bls $(FUZZ_SECONDS)

# A quick subset of issue 15's side-by-side benchmarks (small sizes, one run
# each: a few minutes); bench/README.md lists the full runs.
BENCH_DIR ?= /usr/share/doc
bench: build
	RUNS=1 SHA_SECONDS=1 BUILD=$(abspath $(BUILD)) bench/digest_bench.sh -d $(BENCH_DIR)
	RUNS=1 SHA_SECONDS=1 BUILD=$(abspath $(BUILD)) bench/verity_file_bench.sh -s 256 -k random
	RUNS=1 BUILD=$(abspath $(BUILD)) bench/store_bench.sh -d $(BENCH_DIR)
	RUNS=1 BUILD=$(abspath $(BUILD)) bench/oci_import_bench.sh -d $(BENCH_DIR)
	bench/scale_bench.sh -b $(abspath $(BUILD)) 10000

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

lint: deps $(BUILD)/.configured
	@scripts/lint.sh $(BUILD) $(JOBS)

# The prefix is configured into the build (where everything goes);
# DESTDIR only relocates the copy.
install: deps $(BUILD)/.configured
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(CROSS_BUILD)
