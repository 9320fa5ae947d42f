"""Every reducer parameter is checked where it is made: out of range, wrong type or unknown gets a message."""

import pytest

from explorer.cli import main
from explorer.models.reducers import REDUCERS, ParameterError, make_reducer

NUMBERS = [
    (name, p) for name, cls in REDUCERS.items() for p in cls.params if p.kind in (int, float) and p.high is not None
]
CHOICES = [(name, p) for name, cls in REDUCERS.items() for p in cls.params if p.choices]


@pytest.mark.parametrize("name, param", NUMBERS, ids=[f"{n}.{p.name}" for n, p in NUMBERS])
def test_numbers_out_of_range_are_refused_by_name(name, param):
    for bad in (param.high + 1, param.low - 1, "lots"):
        with pytest.raises(ParameterError, match=param.name):
            make_reducer(name, **{param.name: bad})
    make_reducer(name, **{param.name: param.default})


@pytest.mark.parametrize("name, param", NUMBERS, ids=[f"{n}.{p.name}" for n, p in NUMBERS])
@pytest.mark.parametrize("bad", [10**30, -(10**30), "1e30", 10**400, "nan", float("inf"), "-inf"])
def test_huge_and_non_finite_numbers_are_refused_in_one_message(name, param, bad):
    with pytest.raises(ParameterError, match=rf"^{param.name} must be (a finite number|between)"):
        make_reducer(name, **{param.name: bad})


@pytest.mark.parametrize("name, param", CHOICES, ids=[f"{n}.{p.name}" for n, p in CHOICES])
def test_choices_outside_the_list_are_refused(name, param):
    with pytest.raises(ParameterError, match="must be one of"):
        make_reducer(name, **{param.name: "nonsense"})


def test_unknown_parameters_name_the_known_ones():
    with pytest.raises(ParameterError, match="its parameters: tau, budget"):
        make_reducer("rlt", tua=0.1)


@pytest.mark.parametrize("setting", ["tau=-1", "tau=abc", "budget=2", "nope=1"])
def test_the_cli_prints_one_error_line(setting, capsys, tmp_path):
    code = main(
        [
            "analyze",
            "sample:still_and_moving",
            "--model",
            "tiny",
            "--reducer",
            "rlt",
            "--set",
            setting,
            "--frames",
            "4",
            "--size",
            "64",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:")
