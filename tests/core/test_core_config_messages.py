"""Every configuration problem reads ``path.to.key: what was expected, got what (in FILE)``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neuroflow.config import load_config
from neuroflow.errors import ConfigError

ONE_FORM = re.compile(r"^(?P<path>[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+|[a-z_]+): (?P<what>.+) "
                      r"\(in neuroflow\.toml\)$")

BAD = {
    "a type": ('[sandbox.process]\ncpu_time_limit = "lots"\n', "sandbox.process.cpu_time_limit"),
    "a validator": ("[sandbox.process]\nmemory_limit = -5\n", "sandbox.process.memory_limit"),
    "a size": ('[sandbox.process]\nmemory_limit = "many"\n', "sandbox.process.memory_limit"),
    "a misspelt key": ("[sandbox.process]\ncpu_time_limt = 1\n", "sandbox.process.cpu_time_limt"),
    "a section setting": ("[memory]\nmax_entries = -1\n", "memory.max_entries"),
    "a section type": ('[memory]\nmax_entries = "x"\n', "memory.max_entries"),
    "a list item": ("[security.allowlist]\ndeny = [3]\n", "security.allowlist.deny.0"),
    "a nested table": ("[security.audit]\nfile = 3\n", "security.audit.file"),
    "a backend option": ("[tracer.local]\nmax_spans = -1\n", "tracer.local.max_spans"),
    "an unknown backend": ('[sandbox]\nbackend = "nope"\n', "sandbox.backend"),
    "an enum": ('[security]\nlevel = "paranoid"\n', "security.level"),
    "an llm option": ('[llm.openai]\ntimeout_seconds = "x"\n', "llm.openai.timeout_seconds"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_every_problem_has_the_one_form(case: str) -> None:
    text, path = BAD[case]
    Path("neuroflow.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config()
    [line] = info.value.problems
    match = ONE_FORM.match(line)
    assert match, f"{case}: {line!r} does not have the one form"
    assert match["path"] == path
    what = match["what"]
    assert not re.match(r"^[a-z_.]+: ", what), f"{case}: a second path inside {line!r}"
    assert what.startswith(("expected", "unknown")), line


def test_a_config_object_built_in_python_names_the_field_the_same_way() -> None:
    from neuroflow.memory import MemoryConfig
    from neuroflow.sandbox import SandboxConfig

    with pytest.raises(ConfigError) as info:
        SandboxConfig(memory_limit=-5)
    assert str(info.value).startswith("memory_limit: expected")
    with pytest.raises(ConfigError) as info:
        MemoryConfig(max_entries=-1)
    assert str(info.value).startswith("max_entries: expected")
