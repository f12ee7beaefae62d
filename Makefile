# slack-oauth-fcgi — plain make. `make`, `make test`, `make demo`, `make install`.

PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc/slack-oauth
CGIDIR     ?= cgi-bin
BINDIR     ?= bin
BUILD      ?= build
DESTDIR    ?=

VERSION := $(shell cat VERSION)

CC      ?= cc
PKGS_INSTALL  = fcgi sqlite3
PKGS_REDIRECT = fcgi sqlite3 libcurl libcjson
PKGS_EVENTS   = fcgi sqlite3 libcjson

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	   -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers \
	   -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE \
	   -Iinclude -DSYSCONFDIR='"$(SYSCONFDIR)"' -DVERSION='"$(VERSION)"'
LDFLAGS += -pie -Wl,-z,relro,-z,now -Wl,--as-needed
ifeq ($(SAN),fuzz)
CC       = clang
CFLAGS  := $(filter-out -D_FORTIFY_SOURCE=2 -O2,$(CFLAGS)) -O1 -DFUZZ_LIBFUZZER \
	   -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_LINK = -fsanitize=fuzzer,address,undefined
endif
# ThreadSanitizer, for the concurrent tests (tests/concurrency.py).
ifeq ($(SAN),thread)
CFLAGS  := $(filter-out -D_FORTIFY_SOURCE=2 -O2,$(CFLAGS)) -O1 \
	   -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif
# make dist: the bundled libraries are found beside the programs.
ifeq ($(DIST),1)
LDFLAGS += -Wl,-rpath,'$$ORIGIN/lib' -Wl,--enable-new-dtags
endif
ifeq ($(SAN),1)
CFLAGS  := $(filter-out -D_FORTIFY_SOURCE=2 -O2,$(CFLAGS)) -O1 \
	   -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

COMMON   = buf util sha256 log conf req resp html page db db_sqlite db_pg state store \
	   installation serve watch
INSTALL  = $(COMMON) install main_install
REDIRECT = $(COMMON) slack redirect main_redirect
EVENTS   = $(COMMON) events main_events
ADMIN    = buf util sha256 log conf db db_sqlite db_pg state store installation watch \
	   slack admin slack-oauth
LIBOBJ   = $(COMMON) install slack redirect events admin

obj = $(patsubst %,$(BUILD)/obj/%.o,$(1))

LIBS_INSTALL  := $(shell pkg-config --libs $(PKGS_INSTALL) 2>/dev/null || echo -lfcgi -lsqlite3) -lpthread
LIBS_REDIRECT := $(shell pkg-config --libs $(PKGS_REDIRECT) 2>/dev/null || echo -lfcgi -lsqlite3 -lcurl -lcjson) -lpthread
LIBS_EVENTS   := $(shell pkg-config --libs $(PKGS_EVENTS) 2>/dev/null || echo -lfcgi -lsqlite3 -lcjson) -lpthread
LIBS_ADMIN    := $(filter-out -lfcgi,$(LIBS_REDIRECT))
PKG_CFLAGS    := $(shell pkg-config --cflags $(PKGS_REDIRECT) libpq 2>/dev/null)

all: $(CGIDIR)/slack-install $(CGIDIR)/slack-oauth-redirect $(CGIDIR)/slack-events \
	$(BINDIR)/slack-oauth

$(BUILD)/obj/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/obj:
	mkdir -p $@

$(CGIDIR)/slack-install: $(call obj,$(INSTALL))
	@mkdir -p $(CGIDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_INSTALL)

$(CGIDIR)/slack-oauth-redirect: $(call obj,$(REDIRECT))
	@mkdir -p $(CGIDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_REDIRECT)

$(CGIDIR)/slack-events: $(call obj,$(EVENTS))
	@mkdir -p $(CGIDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_EVENTS)

$(BINDIR)/slack-oauth: $(call obj,$(ADMIN))
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_ADMIN)

# Unit tests link the modules without any main().
$(BUILD)/unit: tests/unit.c tests/t.h $(call obj,$(LIBOBJ))
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests $(LDFLAGS) -o $@ tests/unit.c \
		$(call obj,$(LIBOBJ)) $(LIBS_REDIRECT)

unit: $(BUILD)/unit

# Fuzz targets, one per parser. `make test` replays their corpora through a
# plain driver; `make fuzz` runs them under libFuzzer (clang) for FUZZ_TIME s.
FUZZERS   = query cookie conf slack_json handler events
FUZZ_TIME ?= 60

$(BUILD)/fuzz-%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(call obj,$(LIBOBJ))
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/fuzz $(LDFLAGS) $(FUZZ_LINK) -o $@ \
		tests/fuzz/fuzz_$*.c tests/fuzz/replay.c $(call obj,$(LIBOBJ)) $(LIBS_REDIRECT)

fuzzers: $(patsubst %,$(BUILD)/fuzz-%,$(FUZZERS))

fuzz:
	$(MAKE) BUILD=build/fuzz CGIDIR=build/fuzz/cgi-bin BINDIR=build/fuzz/bin SAN=fuzz fuzzers
	@for f in $(FUZZERS); do \
		mkdir -p build/fuzz/corpus-$$f build/fuzz/crash; \
		echo "== fuzz-$$f for $(FUZZ_TIME)s"; \
		build/fuzz/fuzz-$$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
			-artifact_prefix=build/fuzz/crash/$$f- \
			build/fuzz/corpus-$$f tests/fuzz/corpus/$$f 2>&1 | \
			grep -E '^(stat::number_of_executed_runs|stat::new_units_added|==|SUMMARY|Done)' ; \
	done

# Packages the build and the tests need, installed when missing (Debian 12).
DEPS = build-essential pkg-config libfcgi-dev libcurl4-openssl-dev libcjson-dev \
       libsqlite3-dev libpq-dev python3 spawn-fcgi valgrind sqlite3 ca-certificates mandoc \
       clang-format

deps:
	@sh tests/apt-install.sh $(DEPS)

# Packages of the deployment and browser tests (tests/deploy.py,
# tests/browser/): the real web servers and Chromium; Node.js only when there
# is no `node`. tests/apt-install.sh installs them without starting them.
DEPLOY_DEPS = nginx fcgiwrap apache2 libapache2-mod-fcgid spawn-fcgi chromium \
              systemd openssl util-linux postgresql
# What `make demo` needs: the build, nginx, spawn-fcgi, Python for the fake Slack.
DEMO_DEPS = build-essential pkg-config libfcgi-dev libcurl4-openssl-dev libcjson-dev \
            libsqlite3-dev python3 nginx spawn-fcgi sqlite3 ca-certificates openssl

deploy-deps:
	@sh tests/apt-install.sh $(DEPLOY_DEPS) $$(command -v node >/dev/null || echo nodejs npm)

# The whole flow on http://localhost:8080 (https://localhost:8443 with real
# Slack credentials) until Ctrl-C (README, "Demo").
demo:
	@sh demo/run.sh intro
	@sh tests/apt-install.sh $(DEMO_DEPS)
	$(MAKE) all
	@sh demo/run.sh

test: deps deploy-deps
	$(MAKE) all unit fuzzers
	$(MAKE) BUILD=build/asan CGIDIR=build/asan/cgi-bin BINDIR=build/asan/bin SAN=1 all unit fuzzers
	$(MAKE) BUILD=build/tsan CGIDIR=build/tsan/cgi-bin BINDIR=build/tsan/bin SAN=thread all
	$(MAKE) dist
	python3 tests/run.py

# The benchmark (bench/run.py, bench/RESULTS.md; issue 6), not part of
# `make test`: the programs against trivial libfcgi and CGI "hello" programs
# behind nginx, with wrk, on 127.0.0.1. BENCH_ARGS: see bench/run.py --help.
BENCH_DEPS = $(DEMO_DEPS) wrk fcgiwrap strace util-linux
BENCH_BIN  = $(BUILD)/bench/hello-fcgi $(BUILD)/bench/hello-cgi $(BUILD)/bench/fake-slack
BENCH_ARGS ?=

$(BUILD)/bench/hello-fcgi: bench/hello_fcgi.c
	@mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< -lfcgi

$(BUILD)/bench/hello-cgi: bench/hello_cgi.c
	@mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

$(BUILD)/bench/fake-slack: bench/fake_slack.c
	@mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lpthread

bench:
	@sh tests/apt-install.sh $(BENCH_DEPS)
	$(MAKE) all $(BENCH_BIN)
	python3 bench/run.py --build $(BUILD)/bench --cgi-bin $(CGIDIR) $(BENCH_ARGS)

.PHONY: bench

# A tarball for hosts without a compiler (README, "Shared hosting"): the
# programs, their two libraries hosts lack (libcjson, libfcgi, from this
# machine's packages), man pages, examples and INSTALL.
ARCH      := $(shell uname -m)
DIST_NAME  = slack-oauth-fcgi-$(VERSION)-linux-$(ARCH)
DIST_DIR   = build/dist/$(DIST_NAME)
DIST_DEPS  = build-essential pkg-config libfcgi-dev libcurl4-openssl-dev libcjson-dev \
             libsqlite3-dev libpq-dev binutils

dist:
	@sh tests/apt-install.sh $(DIST_DEPS)
	rm -rf build/dist
	$(MAKE) DIST=1 BUILD=build/dist/obj CGIDIR=$(DIST_DIR)/cgi-bin \
		BINDIR=$(DIST_DIR)/bin all
	sh dist/pack.sh $(DIST_DIR) $(CC)

.PHONY: dist

# Concurrency through nginx (tests/stress.py; issue 5): 1,000 full flows at
# 64 clients on nginx + spawn-fcgi (4 processes per program) and on nginx +
# fcgiwrap, one state sent 50 times at once, the schema made by 16 processes
# at once. `make test` runs the quick version (100 flows at 16 clients).
STRESS_ARGS ?=

stress:
	@sh tests/apt-install.sh nginx spawn-fcgi fcgiwrap
	$(MAKE) all
	python3 tests/stress.py $(STRESS_ARGS)

.PHONY: stress

# Formats the C sources by .clang-format (make test checks it).
format:
	clang-format -i src/*.c include/*.h tests/*.c tests/*.h tests/fuzz/*.c \
		tests/fuzz/*.h bench/*.c

clean:
	rm -rf $(BUILD) $(CGIDIR)/slack-install $(CGIDIR)/slack-oauth-redirect \
		$(CGIDIR)/slack-events \
		$(BINDIR)/slack-oauth

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/cgi-bin $(DESTDIR)$(PREFIX)/sbin \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 $(CGIDIR)/slack-install $(CGIDIR)/slack-oauth-redirect \
		$(CGIDIR)/slack-events $(DESTDIR)$(PREFIX)/lib/cgi-bin/
	install -m 0755 $(BINDIR)/slack-oauth $(DESTDIR)$(PREFIX)/sbin/
	install -m 0644 man/slack-oauth.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 man/slack-install.8 man/slack-events.8 man/slack-oauth.8 \
		$(DESTDIR)$(PREFIX)/share/man/man8/
	ln -sf slack-install.8 $(DESTDIR)$(PREFIX)/share/man/man8/slack-oauth-redirect.8

.PHONY: all unit fuzzers fuzz deps deploy-deps demo test format clean install
