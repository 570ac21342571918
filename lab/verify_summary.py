#!/usr/bin/env python3
"""Print the failed tests of the last verify step, from its JUnit XML report.

`make test` calls this after molecule failed: molecule's own output ends with the destroy
step, so the pytest summary is far above what a CI log's tail shows.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MESSAGE_CHARS = 600


def failures(report: Path) -> list[tuple[str, str]]:
    """(test id, message) for every failed or erroring test case in the report."""
    found = []
    # The report is the one our own pytest run just wrote, not untrusted input.
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        for outcome in ("failure", "error"):
            node = case.find(outcome)
            if node is None:
                continue
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            message = (node.get("message") or node.text or "").strip()
            found.append((f"{outcome.upper()} {name}", message))
    return found


def main(argv: list[str]) -> int:
    report = Path(argv[1] if len(argv) > 1 else ".verify/junit.xml")
    if not report.is_file():
        print(f"[verify] no report at {report}: the verify step did not run")
        return 0
    found = failures(report)
    print(f"[verify] {len(found)} failed test(s) in {report}:")
    for name, message in found:
        print(f"  {name}")
        short = " ".join(message.split())
        if len(short) > MESSAGE_CHARS:
            short = short[:MESSAGE_CHARS] + " ..."
        print(f"    {short}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
