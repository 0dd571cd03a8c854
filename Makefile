# The two Quick start commands, plus what they need. `make demo` and `make test`
# each do all of their own set-up on a fresh clone, inside a virtual environment
# (.venv), so a stock Debian/Ubuntu python3 (PEP 668, "externally managed") works.
#
# Dependencies resolve to the newest releases the ranges in pyproject.toml allow,
# as a user's `pip install` would. For a reproducible run against the versions
# last known to pass, use the constraints file:
#   make test CONSTRAINTS=constraints.txt
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
CONSTRAINTS ?=
PIP := $(VPY) -m pip install --quiet --disable-pip-version-check --upgrade --upgrade-strategy eager \
	$(if $(CONSTRAINTS),--constraint $(CONSTRAINTS))
# Debian packages the lab fleet (sshd + nginx on loopback), its monitoring (`lab up
# --monitoring`: Prometheus + nginx exporter) and the tests use.
DEBIAN_PACKAGES := openssh-server openssh-client nginx-light rsync git libatomic1 procps \
	prometheus prometheus-nginx-exporter
# Tools installed into the venv (ansible-playbook, cd-checks, ...) are found by
# the tests and by the commands below without activating it.
export PATH := $(abspath $(VENV))/bin:$(PATH)
# The wheel-in-a-fresh-venv test resolves with the same constraints (none by default).
export CD_CHECKS_CONSTRAINTS := $(if $(CONSTRAINTS),$(abspath $(CONSTRAINTS)))

.PHONY: demo test setup setup-test venv system-packages ci-tools bench lint constraints

demo: setup
	$(VENV)/bin/cd-checks -C examples validate
	$(VENV)/bin/cd-checks -C examples rollout plan --change nginx

# --dist loadfile keeps each module's tests on one worker, in order, so a lab module
# sets its fleet up once. (xdist 3.8's loadgroup ignores xdist_group marks under
# pytest 9: it writes item._nodeid, which pytest 9 no longer reads.)
test: setup-test system-packages ci-tools
	$(VPY) -m pytest -q -n 2 --dist loadfile --durations=25

setup: venv
	$(PIP) -e .

setup-test: venv
	$(PIP) -e '.[test]'

# Debian/Ubuntu ship venv's pip (ensurepip) in a separate package: install it when root.
venv: $(VPY)
$(VPY):
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian package python3-venv"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; }; \
	  else \
	    echo "python3 cannot create virtual environments: sudo apt-get install python3-venv" >&2; exit 2; \
	  fi; }
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check --upgrade pip

# Installs what is missing when run as root (CI, containers); otherwise says what to install.
system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	  else \
	    echo "the tests need these Debian packages: sudo apt-get install --no-install-recommends $$missing" >&2; exit 2; \
	  fi; \
	fi

# gitlab-ci-local runs the GitLab templates in the tests (4.73.0: the last release for Node 20).
ci-tools:
	@command -v gitlab-ci-local >/dev/null || { command -v npm >/dev/null && npm install -g --silent gitlab-ci-local@4.73.0; } || echo "no npm: the gitlab-ci-local tests will be skipped" >&2

# cd-checks against yamllint alone on a generated kube-prometheus-shaped repository;
# any repository: $(VPY) bench/vs_yamllint.py DIR
bench: setup-test
	$(VPY) bench/vs_yamllint.py --kube-prometheus

lint: venv
	$(PIP) -e '.[dev]'
	$(VPY) -m ruff check cd_checks tests bench rollout
	$(VPY) -m mypy cd_checks

# Refresh constraints.txt (known-good versions) from the .venv of a green `make test`.
constraints:
	@{ grep '^#' constraints.txt; $(VPY) -m pip freeze --exclude-editable --disable-pip-version-check; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt
