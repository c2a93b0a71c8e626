# mlctl: plain GNU make. `make` builds bin/mlctl and bin/mlctl-agent,
# `make test` builds and runs every suite (unit and end-to-end),
# `make fuzz` builds the libFuzzer targets with clang.
#
# `make install PREFIX=DIR` (default /usr/local; DESTDIR honoured) installs
# the binaries, the bash and zsh completions and the man page.
#
# Knobs:  DEVELOPER=1 (or CI=true) adds -Werror;  SANITIZE=address,undefined
#         or SANITIZE=leak;  O=DIR puts objects elsewhere (default build/,
#         build-<sanitizer>/ when SANITIZE is set);  V=1 shows commands.

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS := yaml-0.1 libgit2 sqlite3 jansson libcurl libarchive libzstd libssh libcrypto

ifeq ($(SANITIZE),)
O ?= build
else
O ?= build-$(subst $(comma),-,$(SANITIZE))
endif
comma := ,
ifeq ($(SANITIZE)$(FUZZ),)
BIN ?= bin
else
BIN ?= $(O)/bin
endif

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wformat-security \
	-Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition \
	-Wpointer-arith -Wwrite-strings -Wvla -Wundef -Wcast-align \
	-Wimplicit-fallthrough -Wmissing-declarations -Wredundant-decls \
	-Wno-unused-parameter -Wno-missing-field-initializers

ifneq ($(DEVELOPER)$(filter true,$(CI)),)
WARN += -Werror
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -I. $(PKG_CFLAGS) -MMD -MP $(CFLAGS) \
	-D_FORTIFY_SOURCE=2 -fstack-protector-strong
ALL_LDFLAGS := $(LDFLAGS)
LIBS := $(PKG_LIBS) -lpthread

ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
ALL_CFLAGS := $(filter-out -D_FORTIFY_SOURCE=2,$(ALL_CFLAGS)) -O1
endif
ifneq ($(FUZZ),)
ALL_CFLAGS += -fsanitize=fuzzer-no-link -DML_FUZZING=1
endif

ifeq ($(V),)
Q := @
QCC = @echo "  CC      $<";
QLD = @echo "  LINK    $@";
QAR = @echo "  AR      $@";
endif

# Sources are found by wildcard so adding a file needs no Makefile edit:
# every .c under common/, orchestrator/ and agent/ goes into one archive,
# except the two main.c files, which become the binaries.
COMMON_SRC := $(wildcard common/*.c)
ORCH_SRC := $(filter-out orchestrator/main.c, \
	$(wildcard orchestrator/*.c orchestrator/*/*.c))
AGENT_SRC := $(filter-out agent/main.c,$(wildcard agent/*.c agent/*/*.c))
LIB_SRC := $(COMMON_SRC) $(ORCH_SRC) $(AGENT_SRC)
LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o) $(O)/gen/schemas.o
LIB := $(O)/libml.a

UNIT_SRC := $(wildcard tests/unit/test_*.c tests/unit/*/test_*.c \
	tests/unit/*/*/test_*.c)
UNIT_BIN := $(UNIT_SRC:%.c=$(O)/%)
E2E_SRC := $(wildcard tests/e2e/test_*.c)
E2E_BIN := $(E2E_SRC:%.c=$(O)/%)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:%.c=$(O)/%)
TEST_SUPPORT_SRC := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJ := $(TEST_SUPPORT_SRC:%.c=$(O)/%.o)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:%.c=$(O)/%)

MAIN_OBJ := $(O)/orchestrator/main.o $(O)/agent/main.o
ALL_OBJ := $(LIB_OBJ) $(MAIN_OBJ) $(TEST_SUPPORT_OBJ) \
	$(UNIT_SRC:%.c=$(O)/%.o) $(E2E_SRC:%.c=$(O)/%.o) $(FUZZ_SRC:%.c=$(O)/%.o) \
	$(TOOL_SRC:%.c=$(O)/%.o)

.PHONY: all setup test unit-bins e2e-bins check-unit fuzz fuzz-bins clean format bench demo install

# Completions and the manual are written by mlctl from its command table.
GEN_DOCS := $(O)/gen/mlctl.bash $(O)/gen/_mlctl $(O)/gen/mlctl.1

all: $(BIN)/mlctl $(BIN)/mlctl-agent $(GEN_DOCS)

$(O)/gen/mlctl.bash: $(BIN)/mlctl
	$(Q)$(BIN)/mlctl __gen completion-bash > $@.tmp && mv $@.tmp $@
$(O)/gen/_mlctl: $(BIN)/mlctl
	$(Q)$(BIN)/mlctl __gen completion-zsh > $@.tmp && mv $@.tmp $@
$(O)/gen/mlctl.1: $(BIN)/mlctl
	$(Q)$(BIN)/mlctl __gen man > $@.tmp && mv $@.tmp $@

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BIN)/mlctl $(BIN)/mlctl-agent $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(O)/gen/mlctl.bash \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/mlctl
	install -m 644 $(O)/gen/_mlctl \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_mlctl
	install -m 644 $(O)/gen/mlctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/mlctl.1

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The JSON Schemas, embedded for `mlctl explain` (orchestrator/view/explain.c).
SCHEMAS := schema/playbook.schema.json schema/inventory.schema.json
$(O)/gen/schemas.c: $(SCHEMAS) scripts/embed.sh
	@mkdir -p $(dir $@)
	$(Q)sh scripts/embed.sh ml_schema_playbook schema/playbook.schema.json \
		ml_schema_inventory schema/inventory.schema.json > $@.tmp
	$(Q)mv $@.tmp $@

$(O)/gen/%.o: $(O)/gen/%.c
	$(QCC)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(QAR)$(AR) rcs $@ $^

$(BIN)/mlctl: $(O)/orchestrator/main.o $(LIB)
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# The agent runs on every VM: it is linked with --as-needed so that it
# depends only on the shared libraries it uses (jansson, libcurl,
# libcrypto, libarchive, libzstd), which a VM gets from Debian packages.
$(BIN)/mlctl-agent: $(O)/agent/main.o $(LIB)
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(ALL_LDFLAGS) -Wl,--as-needed -o $@ $^ $(LIBS)

$(O)/tests/unit/%: $(O)/tests/unit/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	$(QLD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(O)/tests/e2e/%: $(O)/tests/e2e/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	$(QLD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

# Test tools (tests/tools/): the load generator as a command.
$(O)/tests/tools/%: $(O)/tests/tools/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	$(QLD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

unit-bins: $(UNIT_BIN)
e2e-bins: $(E2E_BIN) $(TOOL_BIN)

# `make test` and `make demo` first install what they need (a no-op when
# everything is there), then build in a sub-make so that pkg-config sees the
# freshly installed libraries.
setup:
	$(Q)bash scripts/setup.sh

test: setup
	$(Q)$(MAKE) --no-print-directory all unit-bins e2e-bins
	$(Q)O=$(O) BIN=$(BIN) bash tests/run

# Unit suites only, no fleet: quick feedback while editing.
check-unit: all unit-bins
	$(Q)O=$(O) BIN=$(BIN) ML_SKIP_E2E=1 bash tests/run

$(O)/tests/fuzz/%: $(O)/tests/fuzz/%.o $(LIB)
	$(QLD)$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

fuzz-bins: $(FUZZ_BIN)

fuzz:
	$(MAKE) O=build-fuzz CC=clang SANITIZE=address,undefined FUZZ=1 fuzz-bins

bench: setup
	$(Q)$(MAKE) --no-print-directory all
	bash bench/run

demo: setup
	$(Q)$(MAKE) --no-print-directory all
	bash scripts/demo.sh

format:
	clang-format -i $(LIB_SRC) orchestrator/main.c agent/main.c \
		$(wildcard */*.h */*/*.h)

clean:
	rm -rf build build-* $(BIN)

-include $(ALL_OBJ:.o=.d)
