"""The shared-deployment setting: read from the environment, and set by `token-explorer app --shared`."""

import os

import pytest

from explorer import cli
from explorer.deployment import SHARED_ENV, shared


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), (" On ", True), ("0", False), ("", False)])
def test_shared_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(SHARED_ENV, value)
    assert shared() is expected


def test_app_shared_serves_streamlit_with_the_setting(monkeypatch, capsys):
    monkeypatch.setenv(SHARED_ENV, "0")  # recorded as it was, so that teardown puts it back (app --shared sets it)
    started = {}
    monkeypatch.setattr(os, "execv", lambda path, argv: started.update(argv=argv, shared=shared()))
    cli.main(["app", "--shared", "--port", "8600"])
    assert started["shared"] and started["argv"][2:4] == ["streamlit", "run"] and "8600" in started["argv"]
    monkeypatch.setenv(SHARED_ENV, "0")
    cli.main(["app", "--dry-run"])
    cli.main(["app", "--shared", "--dry-run"])
    plain, with_shared = capsys.readouterr().out.splitlines()
    assert with_shared == f"{SHARED_ENV}=1 {plain}" and not shared()
