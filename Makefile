# The two commands of the README. PYTHON picks the interpreter (a venv's, say).
PYTHON ?= python3

.PHONY: app test check lint dev browser bench gpu-check demo-model

app:  ## install what the app needs, then serve it on http://localhost:8501
	$(PYTHON) -m pip install -q -r requirements.txt
	$(PYTHON) -m streamlit run app.py

test: browser dev  ## install what the tests need, then run them all (no GPU, no network needed beyond the install)
	$(PYTHON) -m pytest -q

check: lint  ## lint, format check, types on the typed core, then the fast tests (no slow or browser ones)
	$(PYTHON) -m pytest -q -m "not slow and not browser"

lint: dev  ## ruff (lint and format check) on the tree, mypy on the typed core (the set is in pyproject.toml)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

dev:  ## install what the tests and checks need
	$(PYTHON) -m pip install -q -r requirements-dev.txt

# The browser tests drive Debian's chromium with Playwright (never a browser Playwright downloads).
# Installed with apt-get when missing; offline or without root that fails, and the browser tests are skipped.
APT_CHROMIUM = env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

browser:  ## make sure chromium is installed for the browser tests
	@command -v chromium >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  command -v apt-get >/dev/null 2>&1 && \
	  { $$sudo $(APT_CHROMIUM) || { $$sudo apt-get update -q && $$sudo $(APT_CHROMIUM); }; }; \
	} || echo "chromium could not be installed: the browser tests (tests/test_browser.py) will be skipped"

bench:  ## print measured decode, redraw and batch times (every reducer, ViT-small, batch 8) on the bundled sample
	$(PYTHON) -m explorer bench --models small --batch 8

gpu-check: dev  ## on a machine with a GPU: CUDA tests, every reducer at bf16/fp16, bench, accuracy, scan
	PYTHONPATH=. $(PYTHON) benchmarks/gpu_check.py --out gpu_check

# The shipped demo model, as it was made: each run goes on from the one before (explorer/train.py). About 90 min on
# 2 CPU cores (17 + 30 + 19 + 23 min measured, some under load); the file's record holds every run's settings.
DEMO_STAGES = results/demo_model
demo-model:  ## retrain assets/demo_model.safetensors from scratch (first generator, then the broad one 3 times)
	mkdir -p $(DEMO_STAGES)
	$(PYTHON) -m explorer train --generator first --out $(DEMO_STAGES)/stage1.safetensors
	$(PYTHON) -m explorer train --init $(DEMO_STAGES)/stage1.safetensors --steps 450 --lr 1e-3 --warmup 0.05 \
	  --clips 3000 --seed 0 --out $(DEMO_STAGES)/stage2.safetensors
	$(PYTHON) -m explorer train --init $(DEMO_STAGES)/stage2.safetensors --steps 900 --lr 7e-4 --warmup 0.05 \
	  --clips 4000 --seed 1 --threads 1 --out $(DEMO_STAGES)/stage3.safetensors
	$(PYTHON) -m explorer train --init $(DEMO_STAGES)/stage3.safetensors --steps 900 --lr 5e-4 --warmup 0.05 \
	  --clips 4000 --seed 2 --threads 1 --out assets/demo_model.safetensors
