"""Write each role's README variable tables from its meta/argument_specs.yml.

The part of roles/<role>/README.md between the two marker lines (BEGIN / END below) is
generated: the role's entry points and, once per distinct option set, a table of the options
with their type (`list of dict` ...), whether they are required, their default and their
description. The sub-options of a dict or list-of-dict option follow it as nested rows
(`option[].key`). Entry points that share one option set through a YAML anchor
(`options: *rabbitmq_options`) get one table, which names them all.

    python tools/role_docs.py           rewrite the READMEs that differ
    python tools/role_docs.py --check   only report them (exit 1), write nothing

Everything outside the markers is left as it is. `make docs` runs the first form;
tests/test_role_docs.py runs the second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = "meta/argument_specs.yml"
BEGIN = "<!-- BEGIN GENERATED: argument_specs -->"
END = "<!-- END GENERATED: argument_specs -->"
NOTICE = (
    "<!-- Written by tools/role_docs.py from meta/argument_specs.yml: edit that file, "
    "then run `make docs`. -->"
)


class MarkerError(Exception):
    """A README without exactly one pair of markers, in order."""


def load_specs(role_dir: Path) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((role_dir / SPECS).read_text()) or {}
    return data.get("argument_specs") or {}


def text(value: Any) -> str:
    """A description (a string or a list of strings) as one Markdown table cell."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(part) for part in value)
    value = " ".join(str(value).split())
    # `<word>` would be taken for an HTML tag; `|` would end the cell.
    return value.replace("<", "&lt;").replace("|", "\\|")


def code(value: str) -> str:
    """Inline code that survives a table cell (a `|` inside it still needs its escape)."""
    value = value.replace("|", "\\|")
    fence = "``" if "`" in value else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def reads_as_other_scalar(value: str) -> bool:
    """Whether YAML would read the bare string as something else: "", "3.13", "true"."""
    try:
        loaded = yaml.safe_load(value)
    except yaml.YAMLError:
        return False
    return value == "" or loaded is None or isinstance(loaded, bool | int | float)


def literal(value: Any) -> str:
    """A default on one line: a string as it is (a Jinja expression stays readable), in double
    quotes only where YAML would read it as another type; anything else in YAML flow style."""
    if isinstance(value, str):
        return code(json.dumps(value) if reads_as_other_scalar(value) else value)
    dumped = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, sort_keys=False)
    # A plain scalar comes back as a document: "5672\n...\n".
    return code(dumped.strip().removesuffix("...").strip())


def type_name(option: dict[str, Any]) -> str:
    kind = option.get("type", "str")
    if kind == "list":
        return f"list of {option.get('elements', 'raw')}"
    return str(kind)


def describe(option: dict[str, Any]) -> str:
    parts = [text(option.get("description"))]
    if option.get("choices"):
        parts.append("One of " + ", ".join(code(str(c)) for c in option["choices"]) + ".")
    if option.get("no_log"):
        parts.append("Never logged (`no_log`).")
    return " ".join(part for part in parts if part)


def option_rows(options: dict[str, Any], prefix: str = "") -> list[str]:
    rows = []
    for name, option in options.items():
        option = option or {}
        required = "yes" if option.get("required") else "no"
        default = literal(option["default"]) if "default" in option else ""
        rows.append(
            f"| {code(prefix + name)} | {type_name(option)} | {required} | {default} "
            f"| {describe(option)} |"
        )
        if option.get("options"):
            marker = "[]" if option.get("type") == "list" else ""
            rows.extend(option_rows(option["options"], f"{prefix}{name}{marker}."))
    return rows


def names(entry_points: list[str]) -> str:
    return ", ".join(code(name) for name in entry_points)


def render(specs: dict[str, dict[str, Any]]) -> str:
    """The generated section, markers included."""
    # Entry points with equal options (a YAML alias loads as the very same dict) share a table.
    groups: list[tuple[dict[str, Any], list[str]]] = []
    for entry_point, spec in specs.items():
        options = (spec or {}).get("options") or {}
        for group_options, members in groups:
            if group_options == options:
                members.append(entry_point)
                break
        else:
            groups.append((options, [entry_point]))

    lines = [BEGIN, NOTICE, "", "### Entry points with an argument spec", ""]
    lines += ["| entry point | does |", "|---|---|"]
    for entry_point, spec in specs.items():
        lines.append(f"| {code(entry_point)} | {text((spec or {}).get('short_description'))} |")
    for options, members in groups:
        if len(groups) == 1:
            lines += ["", "### Options", ""]
            if len(members) > 1:
                lines += [
                    f"Every entry point above ({names(members)}) takes this one option set.",
                    "",
                ]
        else:
            lines += ["", f"### Options of {names(members)}", ""]
        if not options:
            lines.append("No options.")
            continue
        lines += [
            "| option | type | required | default | description |",
            "|---|---|---|---|---|",
        ]
        lines += option_rows(options)
    lines.append(END)
    return "\n".join(lines) + "\n"


def splice(readme: str, section: str) -> str:
    """The README with its generated section replaced by `section`."""
    lines = readme.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or begins[0] > ends[0]:
        raise MarkerError(f"needs one {BEGIN!r} line and, below it, one {END!r} line")
    return "".join(lines[: begins[0]]) + section + "".join(lines[ends[0] + 1 :])


def role_dirs(root: Path) -> list[Path]:
    return sorted(p.parent.parent for p in (root / "roles").glob(f"*/{SPECS}"))


def expected(role_dir: Path) -> tuple[str, str]:
    """The README as it is and as it should be."""
    readme = (role_dir / "README.md").read_text()
    return readme, splice(readme, render(load_specs(role_dir)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="report the READMEs that differ from their argument_specs (exit 1), write nothing",
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="repository root (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    drifted, broken = [], []
    for role_dir in role_dirs(args.root):
        readme_path = role_dir / "README.md"
        shown = readme_path.relative_to(args.root)
        try:
            current, wanted = expected(role_dir)
        except (OSError, MarkerError, yaml.YAMLError) as error:
            broken.append(f"{shown}: {error}")
            continue
        if current == wanted:
            continue
        drifted.append(str(shown))
        if not args.check:
            readme_path.write_text(wanted)

    for message in broken:
        print(f"role_docs: {message}", file=sys.stderr)
    if args.check:
        for path in drifted:
            print(f"{path}: differs from its meta/argument_specs.yml", file=sys.stderr)
        if drifted:
            print("role_docs: run `python tools/role_docs.py` (make docs)", file=sys.stderr)
        return 1 if drifted or broken else 0
    for path in drifted:
        print(f"wrote {path}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
