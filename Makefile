# The two commands of the README. PYTHON picks the interpreter (a venv's, say).
PYTHON ?= python3

.PHONY: app test bench

app:  ## install what the app needs, then serve it on http://localhost:8501
	$(PYTHON) -m pip install -q -r requirements.txt
	$(PYTHON) -m streamlit run app.py

test:  ## install what the tests need, then run them (no GPU, no network needed beyond the install)
	$(PYTHON) -m pip install -q -r requirements-dev.txt
	$(PYTHON) -m pytest -q

bench:  ## print measured decode, forward and redraw times on the bundled sample
	$(PYTHON) -m explorer bench
