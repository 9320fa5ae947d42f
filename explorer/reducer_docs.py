"""The README's table of reducers, written from the registry, so that a new reducer appears there by itself.

python -m explorer.reducer_docs            # rewrite the table in README.md
python -m explorer.reducer_docs --check    # exit 1 when README.md's table is out of date (CI runs it)
"""

from __future__ import annotations

import sys
from pathlib import Path

from explorer.models.reducers import REDUCERS

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- reducers: written by python -m explorer.reducer_docs -->", "<!-- reducers: end -->"


def reducer_table() -> str:
    """A markdown table: each registered reducer, where it acts and what the views show of it."""
    lines = ["| Reducer | Where it acts | What you see |", "|---|---|---|"]
    for name, cls in REDUCERS.items():
        paper = f" ({cls.paper})" if cls.paper else ""
        lines.append(f"| `{name}` — {cls.title}{paper} | {cls.acts} | {cls.shows} |")
    return "\n".join(lines)


def with_table(readme: str) -> str:
    """The README's text with the table between its markers written anew."""
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"README.md has no table markers ({START} ... {END})")
    return f"{head}{START}\n{reducer_table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    text = README.read_text()
    fresh = with_table(text)
    if check:
        if fresh != text:
            print("README.md's reducer table is out of date: run python -m explorer.reducer_docs", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
