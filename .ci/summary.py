"""Print a pytest JUnit XML report's totals as one plain line; fail if no test ran.

    python .ci/summary.py REPORT.xml   ->   pytest: 812 passed, 0 failed, 4 skipped
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    passed = total - failed - skipped
    print(f"pytest: {passed} passed, {failed} failed, {skipped} skipped")
    if passed == 0:
        print("summary: no test passed (pytest ran no test?)", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
