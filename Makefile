# The README's two commands: `make run` and `make test`. Each creates .venv when needed,
# installs what it needs, and runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOCKETIO_CLIENT_VERSION ?= 4.8.4
# Debian packages the tests and the desktop window need (see the README).
SYSTEM_DEPS := chromium xvfb xauth xdotool imagemagick \
	libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0 \
	libxcb-shape0 libxcb-xinerama0 libxkbcommon-x11-0 libegl1 libgl1 libnss3 \
	libxcomposite1 libxdamage1 libxrandr2 libxtst6 libxkbfile1 libasound2 fonts-dejavu-core

.PHONY: run serve test coverage-html system-deps update-socketio-client clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: reinstall only when the package's metadata changes.
$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

run: serve

serve: $(VENV)/.installed
	$(BIN)/python -m tornado_app $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest --cov=tornado_app --cov-report=term-missing $(PYTEST_ARGS)

system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_DEPS)

# Refresh the Socket.IO JS client served from web/static (the app never uses a CDN).
update-socketio-client:
	rm -rf .socketio-client && mkdir .socketio-client
	cd .socketio-client && npm pack --silent socket.io-client@$(SOCKETIO_CLIENT_VERSION) >/dev/null \
		&& tar xzf socket.io-client-$(SOCKETIO_CLIENT_VERSION).tgz
	cp .socketio-client/package/dist/socket.io.min.js web/static/socket.io.min.js
	cp .socketio-client/package/LICENSE web/static/socket.io-client.LICENSE
	rm -rf .socketio-client

clean:
	rm -rf $(VENV) .pytest_cache .coverage .hypothesis test-output *.egg-info
