# The two Quick start commands, plus what they need. `make demo` and `make test`
# each do all of their own set-up on a fresh clone.
PYTHON ?= python3
PIP := $(PYTHON) -m pip install --quiet --disable-pip-version-check
# Debian packages the lab fleet (sshd + nginx on loopback) and the tests use.
DEBIAN_PACKAGES := openssh-server openssh-client nginx-light rsync git libatomic1 procps

.PHONY: demo test setup system-packages ci-tools bench lint

demo: setup
	$(PYTHON) -m cd_checks -C examples validate
	$(PYTHON) -m cd_checks -C examples rollout plan

test: setup system-packages ci-tools
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup

setup:
	$(PIP) -e '.[test]'

# Installs what is missing when run as root (CI, containers); otherwise says what to install.
system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
	  else \
	    echo "the tests need these Debian packages: sudo apt-get install $$missing" >&2; exit 2; \
	  fi; \
	fi

# gitlab-ci-local runs the GitLab templates in the tests (4.73.0: the last release for Node 20).
ci-tools:
	@command -v gitlab-ci-local >/dev/null || { command -v npm >/dev/null && npm install -g --silent gitlab-ci-local@4.73.0; } || echo "no npm: the gitlab-ci-local tests will be skipped" >&2

bench: setup
	$(PYTHON) bench/validate_vs_yamllint.py

lint: setup
	$(PYTHON) -m ruff check cd_checks tests bench
	$(PYTHON) -m mypy cd_checks
