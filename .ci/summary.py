"""Print a pytest JUnit XML report's totals as one plain line; fail if no test passed, if
any failed, and - in CI - if a test was skipped that the CI machine can run.

    python .ci/summary.py REPORT.xml   ->   pytest: 812 passed, 0 failed, 4 skipped

With ``CI=true`` in the environment, every skipped test (``pytest.skip``, ``skipif``,
``importorskip``, and ``xfail``, which JUnit reports as skipped too) must give a reason
listed in :data:`CI_MACHINE_LACKS`; any other reason fails the run and is printed.  A skip
is how a test says "this machine cannot do that", and the CI machine is the one that must
prove it can: a missing extra, a stopped service or a lost privilege there must not turn
tests into green skips.
"""

from __future__ import annotations

import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

#: The skip reasons allowed in CI, each exactly as the test gives it, with why the CI
#: machine kind lacks what the test needs.  The CI machine (a Linux container, root,
#: cgroup v1 with the pids, memory and freezer controllers, PostgreSQL, every
#: distribution and extra installed by ``.ci/install_dists.py --all``) runs every test of
#: ``tests/`` and ``plugins/`` today: its only skips in a run were extras that a
#: development venv lacked and CI installs, which are not allowed here.  Add a reason
#: only for a capability such machines truly lack, never for a missing install.
CI_MACHINE_LACKS: tuple[str, ...] = ()

_LOCATION = re.compile(r"^\S+:\d+: ")


def skipped_tests(root: ET.Element) -> list[tuple[str, str]]:
    """Every skipped (or xfailed) test case as ``(test id, reason)``."""
    found = []
    for case in root.iter("testcase"):
        skip = case.find("skipped")
        if skip is None:
            continue
        reason = skip.get("message") or _LOCATION.sub("", (skip.text or "").strip())
        reason = reason.removeprefix("Skipped: ")
        name = "::".join(part for part in (case.get("classname"), case.get("name")) if part)
        found.append((name, reason))
    return found


def in_ci(environ: Mapping[str, str]) -> bool:
    """Whether ``CI`` says this is a CI run (``true``, ``1`` or ``yes``, any case)."""
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def main(
    path: str,
    *,
    environ: Mapping[str, str] | None = None,
    allowed: Sequence[str] = CI_MACHINE_LACKS,
) -> int:
    """Print the totals of the report at ``path``; return the exit status (0 = green)."""
    environ = os.environ if environ is None else environ
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        print(f"summary: cannot read the JUnit report {path}: {exc}", file=sys.stderr)
        return 1
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    passed = total - failed - skipped
    print(f"pytest: {passed} passed, {failed} failed, {skipped} skipped")
    status = 1 if failed else 0
    if passed <= 0:
        print("summary: no test passed (pytest ran no test?)", file=sys.stderr)
        status = 1
    if in_ci(environ):
        wrong = [(name, reason) for name, reason in skipped_tests(root)
                 if reason not in allowed]
        if wrong:
            print(f"summary: CI=true and {len(wrong)} test(s) skipped for a reason this "
                  "machine kind can meet (allowed reasons: .ci/summary.py CI_MACHINE_LACKS):",
                  file=sys.stderr)
            for name, reason in wrong:
                print(f"  {name}: {reason}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python .ci/summary.py REPORT.xml", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(sys.argv[1]))
