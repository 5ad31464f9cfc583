# Weft build. Every target runs with the project's Node 24 first on PATH.
SHELL := /bin/bash
export PATH := $(CURDIR)/.tools/node/bin:$(CURDIR)/node_modules/.bin:$(PATH)

BUILD      := build
BPF_SRCS   := $(wildcard bpf/*.c)
BPF_OBJS   := $(patsubst bpf/%.c,$(BUILD)/bpf/%.o,$(BPF_SRCS))
BPF_HDRS   := $(wildcard bpf/include/*.h)
VMLINUX_H  := $(BUILD)/include/vmlinux.h
ARCH       := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
BPF_CFLAGS := -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) \
              -I$(BUILD)/include -Ibpf/include
TEST_BPF_OBJS := $(patsubst test/fixtures/bpf/%.c,$(BUILD)/test-bpf/%.o,$(wildcard test/fixtures/bpf/*.c))
NATIVE_SRCS := $(wildcard native/*.c)
NATIVE_HDRS := $(wildcard native/*.h)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bin/%,$(wildcard bench/*.c))
TS_SRCS    := $(shell find src test bench -name '*.ts' 2>/dev/null)

.PHONY: all deps bpf ts native bench-bins run stop test test-unit test-datapath bench lint clean

all: deps bpf native ts bench-bins

deps:
	@bash scripts/ensure-tools.sh

$(VMLINUX_H): | deps
	@mkdir -p $(dir $@)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.o: bpf/%.c $(BPF_HDRS) $(VMLINUX_H)
	@mkdir -p $(dir $@)
	clang $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/test-bpf/%.o: test/fixtures/bpf/%.c $(BPF_HDRS) $(VMLINUX_H)
	@mkdir -p $(dir $@)
	clang $(BPF_CFLAGS) -c $< -o $@

bpf: $(BPF_OBJS) $(TEST_BPF_OBJS)

$(BUILD)/bin/%: bench/%.c
	@mkdir -p $(dir $@)
	cc -O2 -Wall -Werror -pthread -o $@ $<

bench-bins: $(BENCH_BINS)

# The CNI plugin runs on hosts without Node.js and without our libraries: link it statically.
$(BUILD)/bin/weft-cni: $(NATIVE_SRCS) $(NATIVE_HDRS)
	@mkdir -p $(dir $@)
	$(if $(NATIVE_SRCS),cc -O2 -Wall -Wextra -Werror -static -o $@ $(NATIVE_SRCS),@true)

native: $(if $(NATIVE_SRCS),$(BUILD)/bin/weft-cni)

$(BUILD)/js/.stamp: $(TS_SRCS) tsconfig.json package-lock.json | deps
	tsc -p .
	@touch $@

ts: $(BUILD)/js/.stamp

run: all
	@bash scripts/run.sh start

stop:
	@bash scripts/run.sh stop

# Datapath tests load programs into the kernel and build namespaces: they need root and run
# one file at a time so their worlds never overlap. Lint comes first (CI runs `make test`):
# a finding fails the run before the build and the long suite.
test: lint all
	node --enable-source-maps --test --test-concurrency=1 --test-reporter=spec \
	  'build/js/test/**/*.test.js'

test-unit: all
	node --enable-source-maps --test 'build/js/test/unit/**/*.test.js'

bench: all
	node --enable-source-maps build/js/bench/run.js

# ESLint (type-aware: eslint.config.js), Prettier (prettier.config.js) and clang-format
# (.clang-format). Each runs even when one before it failed, so one run shows every finding.
LINT_TS   := 'src/**/*.ts' 'test/**/*.ts' 'bench/**/*.ts' eslint.config.js prettier.config.js
LINT_C    := $(BPF_SRCS) $(BPF_HDRS) $(NATIVE_SRCS) $(NATIVE_HDRS)
lint: | deps
	@status=0; \
	echo 'lint: eslint'; eslint --max-warnings=0 src test bench || status=1; \
	echo 'lint: prettier --check'; prettier --check --log-level=warn $(LINT_TS) || status=1; \
	echo 'lint: clang-format'; clang-format --dry-run -Werror $(LINT_C) || status=1; \
	exit $$status

clean:
	rm -rf $(BUILD)
