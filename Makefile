# The two commands of the README. PYTHON picks the interpreter (a venv's, say).
PYTHON ?= python3

.PHONY: app test browser bench

app:  ## install what the app needs, then serve it on http://localhost:8501
	$(PYTHON) -m pip install -q -r requirements.txt
	$(PYTHON) -m streamlit run app.py

test: browser  ## install what the tests need, then run them (no GPU, no network needed beyond the install)
	$(PYTHON) -m pip install -q -r requirements-dev.txt
	$(PYTHON) -m pytest -q

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
