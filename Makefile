# composefs-cpp: the two commands of the README, and their parts.
#   make demo   install missing packages, build, run the demo on demo/rootfs
#   make test   install missing packages, build, run every test (also under ASan/UBSan)
#   make build  only build (Release); the tools land in build/bin/
#   make lint   clang-format and clang-tidy (.clang-tidy) over the sources
#   make install [PREFIX=/usr/local] [DESTDIR=]  tools, headers, libraries,
#               CMake package and pkg-config file (mount.composefs in /sbin)
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_GEN  := $(shell command -v ninja >/dev/null 2>&1 && echo -G Ninja)
PREFIX     ?= /usr/local

.PHONY: all deps build build-asan test test-release test-asan demo bench fuzz format lint install clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DCFS_WERROR=ON

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# -O1 -g1: what sanitizer builds are usually run at (full line numbers in
# reports); -O2 -g took twice as long to build, which CI time cannot afford.
$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
	  -DCFS_WERROR=ON -DCFS_SANITIZE=address,undefined

build-asan: $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test-release: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest -j $(JOBS) --output-on-failure

test: deps
	$(MAKE) test-release
	$(MAKE) test-asan

demo: deps build
	@scripts/demo.sh $(BUILD)

FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run.sh image_reader $(FUZZ_SECONDS)
	fuzz/run.sh dump_parser $(FUZZ_SECONDS)
	fuzz/run.sh oci_layer $(FUZZ_SECONDS)
	fuzz/run.sh selinux_policy $(FUZZ_SECONDS)
	fuzz/run.sh kargs $(FUZZ_SECONDS)
	fuzz/run.sh pe_reader $(FUZZ_SECONDS)

bench: build
	@echo "See bench/README.md: each script takes the reference binary's path."

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

lint: $(BUILD)/CMakeCache.txt
	@scripts/lint.sh $(BUILD) $(JOBS)

# The prefix is configured into the build (where everything goes);
# DESTDIR only relocates the copy.
install: $(BUILD)/CMakeCache.txt
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
