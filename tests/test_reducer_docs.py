"""The README's table of reducers is written from the registry and kept current."""

import pytest

from explorer import reducer_docs
from explorer.models.reducers import REDUCERS


def test_the_table_has_a_row_for_every_registered_reducer_with_where_it_acts_and_what_it_shows():
    rows = reducer_docs.reducer_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == list(REDUCERS)
    for row, cls in zip(rows, REDUCERS.values()):
        assert cls.title in row and cls.acts and cls.shows and cls.shows in row


def test_the_readme_table_is_current_and_a_missing_marker_is_named():
    assert reducer_docs.main(["--check"]) == 0, "run python -m explorer.reducer_docs"
    with pytest.raises(ValueError, match="no table markers"):
        reducer_docs.with_table("# a README without the markers\n")
