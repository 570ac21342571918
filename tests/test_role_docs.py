"""The role READMEs, the argument specs and the references in the docs agree: no containers.

- Each role README's generated part is what tools/role_docs.py makes of its argument_specs.
- The argument specs carry the defaults of defaults/main.yml (that they list exactly those
  variables is tests/test_repository.py's), every list option its real element type, and
  every dict element its keys.
- The keys are the ones the tasks read: the shapes the rabbitmq role builds for its own users,
  vhosts and policies (vars/main.yml) pass the specs of rabbitmq_extra_*, and so do the
  inventories' values.
- Every repository path named in README.md, the role READMEs and the role files exists, and
  every quoted section reference names a heading of the README it points to.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from lab import generate_secrets
from tools import role_docs

ROOT = Path(__file__).resolve().parent.parent
ROLE_DIRS = role_docs.role_dirs(ROOT)
ROLES = [d.name for d in ROLE_DIRS]


class _Loader(yaml.SafeLoader):
    """Reads Ansible YAML (with !vault tags)."""


_Loader.add_constructor("!vault", lambda loader, node: "<vault>")


def load(path: Path):
    return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - safe loader subclass


def specs_of(role: str) -> dict:
    return load(ROOT / "roles" / role / "meta/argument_specs.yml")["argument_specs"]


def run_role_docs(*args: str) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        rc = role_docs.main(list(args))
    return rc, stderr.getvalue()


# --- The READMEs are generated from the specs --------------------------------------------------


def test_readmes_match_the_argument_specs():
    rc, errors = run_role_docs("--check", "--root", str(ROOT))
    assert rc == 0, f"{errors}\nRun `make docs` (python tools/role_docs.py) and commit the READMEs."


@pytest.mark.parametrize("role", ROLES)
def test_readme_keeps_one_generated_section_under_role_variables(role):
    readme = (ROOT / "roles" / role / "README.md").read_text()
    assert readme.count(role_docs.BEGIN) == 1 and readme.count(role_docs.END) == 1
    above = readme[: readme.index(role_docs.BEGIN)].splitlines()
    headings = [line for line in above if line.startswith("## ")]
    assert headings and headings[-1] == "## Role variables", headings[-1:]


def test_check_names_a_drifted_readme_and_writes_nothing(tmp_path):
    role = tmp_path / "roles/demo"
    (role / "meta").mkdir(parents=True)
    (role / "meta/argument_specs.yml").write_text(
        "argument_specs:\n"
        "  main:\n"
        "    short_description: Demo.\n"
        "    options: &opts\n"
        "      demo_port: {type: int, default: 80, description: Port.}\n"
        "  preflight:\n"
        "    short_description: Checks only.\n"
        "    options: *opts\n"
    )
    stale = (
        f"# demo\n\nProse stays.\n\n## Role variables\n\n{role_docs.BEGIN}\n| old |\n"
        f"{role_docs.END}\n\nMore prose.\n"
    )
    (role / "README.md").write_text(stale)

    rc, errors = run_role_docs("--check", "--root", str(tmp_path))
    assert rc == 1 and "roles/demo/README.md" in errors
    assert (role / "README.md").read_text() == stale

    assert run_role_docs("--root", str(tmp_path))[0] == 0
    written = (role / "README.md").read_text()
    assert written.startswith("# demo\n\nProse stays.\n") and written.endswith("\nMore prose.\n")
    assert "| `demo_port` | int | no | `80` | Port. |" in written
    assert "(`main`, `preflight`)" in written and written.count("| `demo_port` |") == 1
    assert run_role_docs("--check", "--root", str(tmp_path)) == (0, "")


def test_check_fails_on_a_readme_without_markers(tmp_path):
    role = tmp_path / "roles/demo"
    (role / "meta").mkdir(parents=True)
    (role / "meta/argument_specs.yml").write_text("argument_specs: {main: {options: {}}}\n")
    (role / "README.md").write_text("# demo\n")
    rc, errors = run_role_docs("--check", "--root", str(tmp_path))
    assert rc == 1 and "roles/demo/README.md" in errors and "BEGIN GENERATED" in errors


def test_render_shows_element_types_and_sub_options():
    shared = {
        "demo_users": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "description": "Users | more.",
            "options": {
                "name": {"type": "str", "required": True, "description": "Name."},
                "perms": {
                    "type": "list",
                    "elements": "dict",
                    "description": "Rights.",
                    "options": {"vhost": {"required": True, "description": "Vhost."}},
                },
            },
        },
        "demo_version": {"type": "str", "default": "3.13", "description": "<major>.<minor>"},
    }
    text = role_docs.render({"main": {"options": shared}, "other": {"options": shared}})
    assert "| `demo_users` | list of dict | no | `[]` | Users \\| more. |" in text
    assert "| `demo_users[].name` | str | yes |  | Name. |" in text
    assert "| `demo_users[].perms[].vhost` | str | yes |  | Vhost. |" in text
    assert '| `demo_version` | str | no | `"3.13"` | &lt;major>.&lt;minor> |' in text
    assert text.count("| `demo_users` |") == 1


# --- The specs: defaults, element types, sub-options ---------------------------------------


def _same(a, b) -> bool:
    """Equal with types: 1 is not true, "3.13" is not 3.13."""
    return yaml.safe_dump(a) == yaml.safe_dump(b)


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_defaults_are_the_role_defaults(role):
    defaults = load(ROOT / "roles" / role / "defaults/main.yml") or {}
    wrong = []
    for entry_point, spec in specs_of(role).items():
        for name, option in (spec.get("options") or {}).items():
            if name in defaults and not _same(option.get("default"), defaults[name]):
                wrong.append(
                    f"{entry_point}: {name}: {option.get('default')!r} != {defaults[name]!r}"
                )
    assert not wrong, "\n".join(wrong)


def _walk_options(options: dict, path: str = ""):
    for name, option in (options or {}).items():
        yield f"{path}{name}", option
        yield from _walk_options(option.get("options"), f"{path}{name}.")


@pytest.mark.parametrize("role", ROLES)
def test_list_options_declare_their_elements_and_dict_elements_their_keys(role):
    problems = []
    for entry_point, spec in specs_of(role).items():
        for name, option in _walk_options(spec.get("options")):
            where = f"{entry_point}: {name}"
            kind = option.get("type", "str")
            if kind == "list" and "elements" not in option:
                problems.append(f"{where}: a list without elements")
            if kind != "list" and "elements" in option:
                problems.append(f"{where}: elements on a {kind}")
            if option.get("elements") == "dict" and not option.get("options"):
                problems.append(f"{where}: list of dict without options (its keys)")
            if not option.get("description"):
                problems.append(f"{where}: no description")
            if option.get("required") and "default" in option:
                problems.append(f"{where}: required and a default")
    assert not problems, "\n".join(problems)


def test_list_of_dict_options_are_declared_so():
    options = specs_of("rabbitmq")["main"]["options"]
    for name in ("rabbitmq_extra_users", "rabbitmq_extra_vhosts", "rabbitmq_extra_policies"):
        assert options[name]["elements"] == "dict" and options[name]["options"], name


# --- The specs accept what the tasks use, and refuse the rest --------------------------------


def _validate(role: str, values: dict, entry_point: str = "main") -> list[str]:
    # Ansible validates the role's variables, defaults/main.yml's included: the spec's own
    # defaults (templates among them) never stand in for a missing value there, so not here.
    spec = {
        name: {key: value for key, value in option.items() if key != "default"}
        for name, option in specs_of(role)[entry_point]["options"].items()
        # An entry point's own parameters (required, no default) come from its caller.
        if not (option.get("required") and "default" not in option)
    }
    provided = {name: value for name, value in values.items() if name in spec}
    result = ArgumentSpecValidator(spec).validate(provided, validate_role_argument_spec=True)
    return result.error_messages


def _templated(value) -> bool:
    return "{{" in yaml.safe_dump(value)


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "inventory").glob("*/group_vars/*/main.yml")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_inventory_values_pass_the_argument_specs(path):
    """Each literal value an inventory sets passes every spec that lists it (templates are only
    known at run time: the check-mode preflight run validates those)."""
    values = {k: v for k, v in (load(path) or {}).items() if not _templated(v)}
    for role in ROLES:
        for entry_point in specs_of(role):
            assert _validate(role, values, entry_point) == [], f"{role}:{entry_point}"


EXAMPLE_VHOSTS = [{"name": "reports", "default_queue_type": "quorum"}, {"name": "plain"}]
EXAMPLE_USERS = [
    {
        "name": "reporter",
        "password": "p" * 16,
        "tags": [],
        "permissions": [{"vhost": "reports", "configure": ".*", "write": ".*", "read": ".*"}],
    },
    {"name": "bare", "password": "p" * 16},
]
EXAMPLE_POLICIES = [
    {"name": "cap", "vhost": "reports", "pattern": "^reports\\.", "tags": {"max-length": 10000}},
    {
        "name": "ttl",
        "vhost": "celery",
        "pattern": ".*",
        "apply_to": "quorum_queues",
        "priority": 1,
        "tags": {"message-ttl": 60000},
    },
]


def test_documented_shapes_pass():
    values = {
        "rabbitmq_extra_vhosts": EXAMPLE_VHOSTS,
        "rabbitmq_extra_users": EXAMPLE_USERS,
        "rabbitmq_extra_policies": EXAMPLE_POLICIES,
    }
    assert _validate("rabbitmq", values) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rabbitmq_extra_users": [{"name": "x"}]}, "password"),
        ({"rabbitmq_extra_users": [{"name": "x", "password": "p" * 16, "tag": []}]}, "tag"),
        (
            {
                "rabbitmq_extra_users": [
                    {"name": "x", "password": "p" * 16, "permissions": [{"vhost": "v"}]}
                ]
            },
            "configure",
        ),
        ({"rabbitmq_extra_vhosts": ["reports"]}, "rabbitmq_extra_vhosts"),
        ({"rabbitmq_extra_vhosts": [{"name": "v", "default_queue_type": "lazy"}]}, "lazy"),
        ({"rabbitmq_extra_policies": [{"name": "p", "vhost": "v", "pattern": ".*"}]}, "tags"),
    ],
    ids=[
        "no password",
        "unknown key",
        "permission without rights",
        "a string",
        "queue type",
        "no tags",
    ],
)
def test_wrong_shapes_are_refused(values, message):
    errors = _validate("rabbitmq", values)
    assert errors and message in " ".join(errors), errors
    assert "p" * 16 not in " ".join(errors)


def test_the_roles_own_shapes_pass_the_specs_of_their_extras(tmp_path):
    """vars/main.yml builds the built-in users, vhosts and policies in the shape of the
    rabbitmq_extra_* items and loops over both: so the tasks read no key the specs lack.
    Rendered by ansible-playbook on localhost (no host, no network), checked by the same
    validate_argument_spec that guards the role's entry points."""
    role = ROOT / "roles/rabbitmq"
    playbook = tmp_path / "validate.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Validate the rabbitmq role's own shapes against its argument specs",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars_files": [str(role / "defaults/main.yml"), str(role / "vars/main.yml")],
                    "tasks": [
                        {
                            "name": "Load the argument specs",
                            "ansible.builtin.include_vars": {
                                "file": str(role / "meta/argument_specs.yml"),
                                "name": "specs",
                            },
                        },
                        {
                            "name": "Validate",
                            "ansible.builtin.validate_argument_spec": {
                                "argument_spec": "{{ specs.argument_specs.main.options }}",
                                "provided_arguments": {
                                    "rabbitmq_extra_users": "{{ _rabbitmq_users }}",
                                    "rabbitmq_extra_vhosts": "{{ _rabbitmq_vhosts }}",
                                    "rabbitmq_extra_policies": "{{ _rabbitmq_policies }}",
                                },
                            },
                        },
                    ],
                }
            ],
            sort_keys=False,
        )
    )
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),  # not the project's (fact cache)
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    ansible_playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    assert ansible_playbook, "ansible-playbook is not installed beside this Python"
    result = subprocess.run(  # noqa: S603 - a fixed local command
        [ansible_playbook, "-i", "localhost,", str(playbook)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


# --- References in the docs resolve ------------------------------------------------------------

# Files whose words are read for references: the top-level README and every text file of a role.
DOC_FILES = [ROOT / "README.md"] + sorted(
    p
    for p in (ROOT / "roles").rglob("*")
    if p.is_file() and p.suffix in {".md", ".yml", ".yaml", ".j2", ".py"}
)
TOP_DIRS = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))
ROLE_SUBDIRS = ["tasks", "handlers", "templates", "files", "vars", "defaults", "meta"]
ROLE_SUBDIRS += ["filter_plugins", "library", "module_utils"]
# A path starts a word (never inside /etc/..., a URL or a Jinja expression) with a top-level
# directory or a role's own subdirectory; a role-relative one counts only with a file suffix.
PATH = re.compile(
    r"(?<![\w./~$-])(?P<path>(?P<top>"
    + "|".join(map(re.escape, sorted(set(TOP_DIRS + ROLE_SUBDIRS))))
    + r")/[\w.*/-]*)"
)
# The reader's own inventory, which the README tells them to make by copying inventory/example/.
PLACEHOLDERS = ("inventory/prod/",)


def _role_of(path: Path) -> Path | None:
    parts = path.relative_to(ROOT).parts
    return ROOT / "roles" / parts[1] if parts[0] == "roles" and len(parts) > 2 else None


# The lab's CA and certificates: roles/tls makes them on the first converge (the lab
# inventory's tls_ca_dir), git-ignored.
LAB_TLS_DIR = ROOT / "inventory/lab/tls"


def _generated(path: Path) -> bool:
    """A file the tooling makes (git-ignored): named in the docs, absent from a clean clone
    until `make secrets` writes it (lab/generate_secrets.py's VAULT_FILE) or the first
    converge makes the lab's CA (LAB_TLS_DIR)."""
    resolved = path.resolve()
    return resolved == generate_secrets.VAULT_FILE or resolved.is_relative_to(LAB_TLS_DIR)


def _exists(base: Path, reference: str) -> bool:
    if "*" in reference:
        return any(base.glob(reference))
    return (base / reference).exists() or _generated(base / reference)


def _resolves(reference: str, top: str, source: Path, line: str) -> bool:
    if reference.startswith(PLACEHOLDERS):
        return True
    role = _role_of(source)
    if top in ROLE_SUBDIRS:
        # Relative to the file's own role, to a role named on the same line ("the wheelhouse
        # role's tasks/venv.yml"), or, outside the roles, to any role.
        named = [r for r in ROLE_DIRS if re.search(rf"\b{re.escape(r.name)}\b", line)]
        candidates = ([role] if role else []) + named + ([] if role else ROLE_DIRS)
        if any(_exists(candidate, reference) for candidate in candidates):
            return True
    return top in TOP_DIRS and _exists(ROOT, reference)


def _path_references(text: str):
    for number, line in enumerate(text.splitlines(), 1):
        for match in PATH.finditer(line):
            reference = match["path"].rstrip(".,:;")
            if match["top"] not in TOP_DIRS and not re.search(r"\.\w+$", reference):
                continue  # "tasks/s", a rate; role-relative paths are checked with a suffix
            yield number, line, match["top"], reference


def dangling_paths(source: Path, text: str) -> list[str]:
    return [
        f"{source.relative_to(ROOT)}:{number}: {reference}"
        for number, line, top, reference in _path_references(text)
        if not _resolves(reference, top, source, line)
    ]


def _plain(title: str) -> str:
    return " ".join(title.replace("`", "").replace("*", "").split()).casefold()


def _headings(readme: Path) -> set[str]:
    headings, fenced = set(), False
    for line in readme.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6}\s+(.*?)\s*#*$", line)):
            headings.add(_plain(match[1]))
    return headings


# "Name" in the top-level README / in roles/x/README.md; see "Name" (the README of the file's
# role, the file itself when it is a README, or else the top-level README). A section is named
# by its heading in quotes: "see the failure notes in the README" is refused, as no reader (nor
# this test) can tell which heading it means.
IN_README = re.compile(
    r'"(?P<title>[^"]{2,100})" in (?:the )?(?:(?P<top>top-level README)|`?(?P<file>[\w./-]+\.md)`?)'
)
SEE = re.compile(r'\bsee "(?P<title>[^"]{2,100})"', re.IGNORECASE)
UNQUOTED = re.compile(
    r'\bsee (?:the )?(?P<words>[^"`()\[\].;:]{2,80}?) in (?:the )?(?:top-level |role\'s )?README\b',
    re.IGNORECASE,
)


def _section_target(source: Path, match: re.Match) -> Path:
    if match.re is IN_README:
        if match["top"]:
            return ROOT / "README.md"
        target = ROOT / match["file"]
        role = _role_of(source)
        return role / match["file"] if not target.exists() and role else target
    if source.name == "README.md":
        return source
    role = _role_of(source)
    return role / "README.md" if role else ROOT / "README.md"


def section_references(source: Path, text: str):
    """(title, README) of each quoted section reference; title None for an unquoted one."""
    # A comment's words may run over several lines: join them first.
    text = re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)
    for match in IN_README.finditer(text):
        yield match["title"], _section_target(source, match)
    for match in SEE.finditer(text):
        if not IN_README.match(text, match.start("title") - 1):  # else read above
            yield match["title"], _section_target(source, match)
    for match in UNQUOTED.finditer(text):
        yield None, match[0]


def dangling_sections(source: Path, text: str) -> list[str]:
    dangling = []
    for title, target in section_references(source, text):
        if title is None:
            dangling.append(f"{target!r}: name the section by its heading, in quotes")
        elif not target.exists():
            dangling.append(f'"{title}": {target.relative_to(ROOT)} does not exist')
        elif _plain(title) not in _headings(target):
            dangling.append(f'"{title}" is no heading of {target.relative_to(ROOT)}')
    return dangling


@pytest.mark.parametrize("source", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_in_docs_and_comments_exist(source):
    dangling = dangling_paths(source, source.read_text())
    assert not dangling, "\n".join(dangling)


@pytest.mark.parametrize("source", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_section_references_name_a_heading_of_their_readme(source):
    dangling = dangling_sections(source, source.read_text())
    assert not dangling, f"{source.relative_to(ROOT)}:\n" + "\n".join(dangling)


def test_the_reference_checks_see_what_they_must():
    """Guards the patterns above on the references the repository has, and on broken ones."""
    paths = {
        (source.relative_to(ROOT).as_posix(), reference)
        for source in DOC_FILES
        for _, _, _, reference in _path_references(source.read_text())
    }
    assert ("README.md", "playbooks/ops/upgrade.yml") in paths
    assert ("README.md", "lab/chaos.py") in paths
    assert ("README.md", "roles/rabbitmq/tasks/restart.yml") in paths
    assert not any(reference.startswith("etc/") for _, reference in paths)
    sections = {
        (source.relative_to(ROOT).as_posix(), title)
        for source in DOC_FILES
        for title, _ in section_references(source, source.read_text())
    }
    assert ("roles/rabbitmq/defaults/main.yml", "Reliability: what survives what") in sections
    assert ("README.md", "Verified and not verified") in sections

    defaults = ROOT / "roles/rabbitmq/defaults/main.yml"
    broken = (
        "# Restart through roles/rabbitmq/tasks/restart_all.yml or tasks/nope.yml, not\n"
        "# /etc/rabbitmq/nope.conf nor https://example.org/roles/nope.yml; 10 tasks/s.\n"
        "# (see the failure notes in the README)\n"
        '# (see "Failure notes" in the top-level README); see "Safety" and "Nope"\n'
    )
    assert dangling_paths(defaults, broken) == [
        "roles/rabbitmq/defaults/main.yml:1: roles/rabbitmq/tasks/restart_all.yml",
        "roles/rabbitmq/defaults/main.yml:1: tasks/nope.yml",
    ]
    problems = dangling_sections(defaults, broken)
    assert len(problems) == 2, problems
    assert '"Failure notes" is no heading of README.md' in problems
    assert any("failure notes in the README" in problem for problem in problems)
