# Belfry — one Makefile for the broker, the gateways, the shared code and the tests.
#
#   make                 build/belfry-broker, build/belfry-gateway
#   make SANITIZE=1      the same with ASan+UBSan, in build-san/
#   make test            unit tests (tests/unit/test_*.c)
#   make test-integration  the integration suite (real PostgreSQL, clients)
#   make check           everything tests/run-all.sh runs
#
CC      ?= cc
OPT     ?= -O2
WARN     = -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
           -Wshadow -Wformat=2 -Wundef -Wno-unused-parameter
PKGS     = libevent libzmq msgpack jansson libpq libcrypto hiredis libnats
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CPPFLAGS = -D_GNU_SOURCE -Icommon -Iproto -Itests/unit $(PKG_CFLAGS)
CFLAGS   = -std=c11 -g $(OPT) $(WARN) -MMD -MP
LDLIBS   = $(PKG_LIBS) -lm

ifeq ($(SANITIZE),1)
BUILD   ?= build-san
OPT      = -O1
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
else
BUILD   ?= build
endif

LIB_SRC     := $(wildcard common/*.c) $(wildcard proto/*.c)
BROKER_SRC  := $(wildcard broker/*.c)
GATEWAY_SRC := $(wildcard gateway/*.c)
TEST_SRC    := $(wildcard tests/unit/test_*.c)

LIB_OBJ     := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
BROKER_OBJ  := $(BROKER_SRC:%.c=$(BUILD)/obj/%.o)
GATEWAY_OBJ := $(GATEWAY_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN    := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
LIB         := $(BUILD)/libbelfry.a


.PHONY: all test test-integration check bench fuzz fuzz-build clean
all: $(BUILD)/belfry-broker $(BUILD)/belfry-gateway

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/belfry-broker: $(BROKER_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/belfry-gateway: $(GATEWAY_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# A unit test links the shared library; a test of a broker or gateway module
# names that module's objects here.
TEST_EXTRA_test_rooms := $(BUILD)/obj/gateway/rooms.o

.SECONDEXPANSION:
.SECONDARY:
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $$(TEST_EXTRA_$$*) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

test: $(TEST_BIN)
	@sh tests/unit/run.sh $(BUILD)/tests

test-integration: all
	@BELFRY_BUILD=$(BUILD) sh tests/integration/run.sh

check:
	@sh tests/run-all.sh

# ---- benchmarks (tests/bench/) --------------------------------------------
# Each tests/bench/<name>.c is one program, linked with the shared library.
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

bench: all $(BENCH_BIN)
	@BELFRY_BUILD=$(BUILD) sh tests/bench/run.sh

# ---- fuzzing (tests/fuzz/, clang libFuzzer with ASan+UBSan) ---------------
# Each tests/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput; corpora live in
# tests/fuzz/corpus/<name>/. FUZZ_SECONDS per target (default 60).
FUZZ_CC     ?= clang
FUZZ_FLAGS   = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN    := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_LIB_SRC := $(LIB_SRC) $(filter-out gateway/main.c,$(GATEWAY_SRC))
# The library code goes into an archive (instrumented with the sanitizers and
# coverage, not the fuzzer's main), so a target links only the objects it
# uses: a gateway object whose callbacks live in gateway/main.c is not pulled.
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=build-fuzz/obj/%.o)
FUZZ_OBJ_FLAGS = -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 $(CPPFLAGS) $(FUZZ_OBJ_FLAGS) -MMD -MP -c $< -o $@
build-fuzz/libfuzz.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
build-fuzz/%: tests/fuzz/%.c build-fuzz/libfuzz.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 $(CPPFLAGS) $(FUZZ_FLAGS) $< build-fuzz/libfuzz.a $(LDLIBS) -o $@

fuzz-build: $(FUZZ_BIN)
fuzz: $(FUZZ_BIN)
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)
-include $(shell find build-fuzz/obj -name '*.d' 2>/dev/null)

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
