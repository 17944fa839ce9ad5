"""``neuroflow memory`` errors use the command line's words (``--everything``, ``--tag``,
``AGENT_ID``), not the Python API's (``everything=True``, ``tags``, ``agent_id``)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli

#: Python spellings that must not reach a command-line user.
PYTHON_WORDS = re.compile(r"everything=True|\bagent_id\b|\bmin_importance\b|\btags\b|"
                          r"delete_memories|(?<![-\w])filter:")


def memory(*args: str) -> tuple[int, str]:
    """``neuroflow memory ARGS`` on the built-in in-process store; (status, stderr)."""
    result = CliRunner().invoke(build_cli(), ["memory", *args, "--backend", "memory"])
    return result.exit_code, result.stderr


def test_deleting_with_no_condition_names_the_flags() -> None:
    for args in (("delete", "--yes"), ("delete", "--filter", "{}", "--yes"), ("delete",)):
        code, err = memory(*args)
        assert code == 2, err
        assert "give AGENT_ID, --tag or --filter, or --everything to delete every memory" in err
        assert not PYTHON_WORDS.search(err), err
        assert "Delete every matching memory?" not in err  # refused before asking


def test_everything_deletes_everything() -> None:
    code, err = memory("delete", "--everything", "--yes")
    assert code == 0, err


@pytest.mark.parametrize(("args", "hint", "what"), [
    (("search", "", "q"), "AGENT_ID", "expected a non-empty string, got ''"),
    (("list", "--tag", ""), "--tag", "each tag must be a non-empty string"),
    (("search", "a", "--tag", " x"), "--tag", "each tag must be a non-empty string"),
    (("search", "a", "--min-importance", "5"), "--min-importance",
     "expected a number between 0 and 1, got 5.0"),
    (("list", "--filter", "[1]"), "--filter", "expected a dict of field path"),
    (("search", "a", "--filter", '{"$bad": 1}'), "--filter", "unknown operator '$bad'"),
    (("show", "a", ""), "KEY", "expected a non-empty string, got ''"),
    (("delete", "", "k"), "AGENT_ID", "expected a non-empty string, got ''"),
])
def test_argument_errors_name_the_flag_or_argument(args: tuple[str, ...], hint: str,
                                                    what: str) -> None:
    code, err = memory(*args)
    assert code == 2, err
    assert f"Invalid value for {hint}: " in err, err
    assert what in err
    assert not PYTHON_WORDS.search(err), err
