"""Token Reduction Explorer. Run with: streamlit run app.py (the page: explorer/ui/page.py, run anew on each rerun)."""

import runpy

runpy.run_module("explorer.ui.page", run_name="__main__")
