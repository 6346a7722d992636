# The two commands of the README: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

.PHONY: run test lint lock test-sqlite test-postgres fuzz bench bench-documents bench-live bench-storage bench-backup schema infra clean

# Every dependency, with the dev tools, at the versions of requirements.lock (hash-checked);
# then the project itself, whose own requirements the lock already satisfies.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# requirements.lock again from pyproject.toml's ranges: the newest releases inside them, for
# Python 3.11 on x86-64 Linux (what CI and the deployment images run), with the hashes of
# every file of each release. A unit test (tests/unit/test_lock.py) holds the lock to the
# ranges. `make lock UPGRADE=1` moves every pin to the newest release; without it the pins
# already in the lock are kept where the ranges allow.
UV_VERSION ?= 0.13.9
lock:
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --quiet \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		$(if $(UPGRADE),--upgrade) --output-file requirements.lock

run: $(STAMP)
	$(BIN)/holdfast serve --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The whole suite on SQLite; again on PostgreSQL when TEST_POSTGRES_URL is set (CI sets it,
# and TEST_REDIS_URL for the Redis tests; with TEST_REQUIRE_SERVICES=1 a skip is a failure).
# The two passes run side by side (much of a pass waits on real servers starting and
# stopping), and lint beside them (mypy's CPU while they wait); `make test` fails when any of
# the three does. The SQLite pass uses the Redis database TEST_SQLITE_REDIS_URL when it is
# set, so that the passes never share one. What uses no database of the pass's backend runs
# in one pass only: the deployment files' checks (tests/infra), the unit tests, the hosting
# DNS tests and the tests marked no_database (`holdfast` processes on SQLite files of their
# own) in the SQLite pass; the contract suites (tests/contract: every provider against moto,
# localstripe, PowerDNS and the disk) in the PostgreSQL pass, so that the two passes take
# about as long as each other (in the SQLite pass when there is no PostgreSQL pass).
# `--durations=25`: the slowest tests of each pass, in the CI log.
test: $(STAMP)
	$(MAKE) -j3 --output-sync=target lint test-sqlite test-postgres

# The third-party GraphQL clients the SQLite pass runs under Node.js (Apollo Client and urql:
# tests/integration/test_client_libraries.py), at the versions of tests/clients/package-lock.json;
# installed again only when node_modules is missing or the lock changed (no network otherwise).
# Without npm the test skips (and fails with TEST_REQUIRE_SERVICES=1: .ci/run installs Node.js).
NODE_CLIENTS := tests/clients
NODE_STAMP := $(NODE_CLIENTS)/node_modules/.installed-stamp
$(NODE_STAMP): $(NODE_CLIENTS)/package.json $(NODE_CLIENTS)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(NODE_CLIENTS) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm is not installed: the third-party client tests will skip"; \
	fi

test-sqlite: $(STAMP) $(NODE_STAMP)
	TEST_DATABASE=sqlite TEST_REDIS_URL="$${TEST_SQLITE_REDIS_URL:-$$TEST_REDIS_URL}" \
		$(BIN)/pytest --durations=25 $${TEST_POSTGRES_URL:+--ignore=tests/contract}

test-postgres: $(STAMP)
	@if [ -n "$$TEST_POSTGRES_URL" ]; then \
		TEST_DATABASE=postgres $(BIN)/pytest --durations=25 -m "not no_database" \
			--ignore=tests/infra --ignore=tests/unit --ignore=tests/integration/test_hosting_dns.py; \
	elif [ "$$TEST_REQUIRE_SERVICES" = "1" ]; then \
		echo "TEST_POSTGRES_URL is not set but TEST_REQUIRE_SERVICES=1"; exit 1; \
	else \
		echo "PostgreSQL pass skipped: set TEST_POSTGRES_URL to run it"; \
	fi

# A long randomised schemathesis pass over every GraphQL operation (tests/fuzz): FUZZ_EXAMPLES
# examples each, on SQLite, then on PostgreSQL when TEST_POSTGRES_URL is set. `make test` runs a
# short derandomised pass of the same test. FUZZ_REPORT=file surveys all failures instead.
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	@status=0; \
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TEST_DATABASE=sqlite $(BIN)/pytest -m fuzz tests/fuzz || status=1; \
	if [ -n "$$TEST_POSTGRES_URL" ]; then \
		FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TEST_DATABASE=postgres $(BIN)/pytest -m fuzz tests/fuzz || status=1; \
	fi; \
	exit $$status

schema: $(STAMP)
	$(BIN)/python -m schema.export > schema.graphql

# infra/nginx-holdfast.conf: the packaged nginx site rendered with the default settings (a test
# fails when it drifts from app/hosting/files/nginx-holdfast.conf).
infra: $(STAMP)
	env $$(env | grep -o '^HOLDFAST_[A-Z0-9_]*' | sed 's/^/-u /') $(BIN)/python -c \
		'from app.hosting.userdata import render_nginx_site; from app.settings import Settings; \
		print(render_nginx_site(Settings()), end="")' > infra/nginx-holdfast.conf

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(NODE_CLIENTS)/node_modules

# The home-timeline benchmark: GraphQL against a raw Starlette + asyncpg handler on a seeded
# PostgreSQL (bench/README.md). Not part of `make test`; needs wrk and PostgreSQL.
BENCH_ARGS ?= --users 10000 --posts 1000000 --duration 15
bench: $(STAMP)
	$(BIN)/python -m bench.timeline $(BENCH_ARGS)

# What hostile documents cost to validate, uncached, under the default limits (bench/README.md).
bench-documents: $(STAMP)
	$(BIN)/python -m bench.documents

# Live updates under load: subscribers over two processes on PostgreSQL and Redis, a burst of
# posts, latency from the mutation's response to receipt, memory per idle connection.
LIVE_ARGS ?= --subscribers 1000 --processes 2 --posts 200 --max-idle 5000
bench-live: $(STAMP)
	$(BIN)/python -m bench.live $(LIVE_ARGS)

# Moving objects between two moto S3 servers: `holdfast storage migrate` beside `rclone copy`
# at the same concurrency (bench/README.md). Needs rclone (`apt-get install -y rclone`).
STORAGE_ARGS ?= --objects 2000 --concurrency 8
bench-storage: $(STAMP)
	$(BIN)/python -m bench.storage $(STORAGE_ARGS)

# A backup of a seeded database, then its verified restore into an empty one (bench/README.md).
BACKUP_ARGS ?= --users 2000 --posts 100000
bench-backup: $(STAMP)
	$(BIN)/python -m bench.backup $(BACKUP_ARGS)
