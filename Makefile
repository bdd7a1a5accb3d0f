# labctl — the two commands: `make demo` (a lab up, its table printed) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LABCTL := $(BIN)/labctl
export LABCTL
export VAGRANT_CHECKPOINT_DISABLE := 1

.PHONY: all venv runtime-venv user-venv host host-docker lint unit fuzz e2e test demo bench golden clean

all: test

$(BIN)/labctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/labctl

# The product users install, for the tests: a virtualenv with labctl's runtime
# dependencies only (what `pip install labctl` gives, at the newest versions
# the pins allow; made again when pyproject.toml changes; frozen.txt lists
# them), and in it the wheel built from the sources, built again and installed
# over the old one whenever a file of the package changes (about 2 s), so a
# stale wheel is never what is tested.
USER_VENV := .venv-user
export LABCTL_UNDER_TEST := $(abspath $(USER_VENV))/bin/labctl
PACKAGE_FILES := pyproject.toml README.md \
	$(shell find labctl templates provision -name __pycache__ -prune -o -print)

# pip builds labctl here in an isolated environment of its own: this target
# needs neither the dev virtualenv nor anything in it
$(USER_VENV)/frozen.txt: pyproject.toml
	rm -rf $(USER_VENV)
	$(PYTHON) -m venv $(USER_VENV)
	$(USER_VENV)/bin/pip install -q .
	$(USER_VENV)/bin/pip freeze --exclude labctl >$@.new
	mv $@.new $@

runtime-venv: $(USER_VENV)/frozen.txt

# pip check: the wheel's own requirements (its metadata) are what the
# virtualenv holds
$(USER_VENV)/labctl.installed: $(USER_VENV)/frozen.txt $(PACKAGE_FILES) | venv
	rm -rf dist/labctl-*.whl
	$(BIN)/python -m hatchling build -t wheel -d dist
	$(USER_VENV)/bin/pip install -q --no-deps --force-reinstall dist/labctl-*.whl
	$(USER_VENV)/bin/pip check >/dev/null
	touch $@

user-venv: $(USER_VENV)/labctl.installed

host: venv
	tools/setup-host.sh

# What the demo's docker-provider lab needs, and no more (no libvirt, QEMU or
# VM box: minutes of a fresh machine's set-up).
host-docker: venv
	tools/setup-host.sh docker

lint: venv
	$(BIN)/ruff check labctl tests tools
	$(BIN)/ruff format --check labctl tests tools
	$(BIN)/mypy labctl
	$(BIN)/lint-imports
	shellcheck -x provision/*.sh tools/*.sh .ci/run

# Unit tests: no Vagrant, Docker or network (fakes of vagrant and docker come
# first on PATH); the coverage of labctl/ by them alone must not fall.
COVERAGE_FLOOR := 85
# The tests' temporary files in memory where there is a tmpfs: a busy disk
# (guests being destroyed) made the suite a second or two slower.
unit: venv runtime-venv
	$(if $(wildcard /dev/shm),TMPDIR=/dev/shm) $(BIN)/pytest -q -n 2 -m "not vagrant" tests/unit \
		--cov=labctl --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

# The generated lab files of tests/unit/test_trust.py, many more of them.
FUZZ_EXAMPLES ?= 20000
fuzz: venv
	LABCTL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider tests/unit/test_trust.py -k "generated or any_bytes"

# Real guests, and the few unit-level tests that run the real Vagrant; the e2e
# tests run $(LABCTL_UNDER_TEST), the wheel's labctl. One worker: two labs
# coming up at once race in Vagrant's docker provider (DEVELOPERS.md).
e2e: host user-venv
	LABCTL_REQUIRE_REAL=1 $(BIN)/pytest -q -m "e2e or vagrant" tests/unit tests/e2e --durations=15

# The whole suite: host set-up, lint, unit tests, end-to-end tests on real guests
# (a missing real part fails the run instead of skipping tests).
test: export LABCTL_REQUIRE_REAL := 1
test: host lint unit e2e

# The main job end to end: a 3-machine lab with containerd, an image built
# offline and imported, a container running in every machine, one table.
demo: host-docker
	$(LABCTL) up nodes --name demo --count 3 --provider docker
	$(BIN)/python tools/oci.py /tmp/labctl-demo-busybox.tar
	$(LABCTL) ctr --lab demo images import /tmp/labctl-demo-busybox.tar
	$(LABCTL) ctr --lab demo rm web --if-exists >/dev/null
	$(LABCTL) ctr --lab demo run docker.io/labctl/busybox:latest web sleep 86400
	$(LABCTL) ctr --lab demo ps
	@echo "The lab is up. Look around: $(LABCTL) ssh demo node1 ; tear it down: $(LABCTL) destroy demo --yes"

# Rewrite every golden file (Vagrantfiles, handoff formats); review with git diff.
golden: venv
	$(BIN)/python tools/golden.py

bench: host user-venv
	$(BIN)/python tools/bench/bench.py

clean:
	rm -rf $(VENV) $(USER_VENV) dist .pytest_cache .mypy_cache .ruff_cache
