"""The documentation is checked against the code it describes.

- docs/configuration.md: its key tables are generated from the config dataclasses (every
  key the loader accepts, its type, its default and the docstring under the field). The
  test fails when a key exists in the code but not on the page or the other way round, or
  when a default or a docstring changed without the page: regenerate it with
  ``python -m tests.unit.test_docs --write`` and review the diff.
- README.md's command table names every ``crisismon`` subcommand, and only those; its
  test command is the one ``.ci/run`` runs.
- Every relative link in README.md and docs/*.md points at a file that exists, and every
  ``#anchor`` into a markdown file at one of its headings.
- The README stays a front page (about 200 lines), not a second manual.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

ROOT = Path(__file__).resolve().parents[2]
CONFIG_PAGE = ROOT / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN generated key tables: python -m tests.unit.test_docs --write -->"
END = "<!-- END generated key tables -->"
README_MAX_LINES = 230


@dataclass(frozen=True)
class Key:
    """One key of ``config.toml``: its path as written on the page, and what to say of it."""

    path: str  # "sla.warn_at", "brands[].keywords", "sources[mqtt].topics"
    section: str  # the TOML table it is written in: "[sla]", '[[sources]] type = "mqtt"'
    type: str
    default: str
    doc: str


def _attribute_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (``x: int = 1`` then a string)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for node, after in zip(body.body, [*body.body[1:], None], strict=True):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = after.value.value
    return docs


def _clean(doc: str) -> str:
    """A docstring as one table cell: one line, markdown code spans, no bare ``|``."""
    text = " ".join(doc.split())
    text = text.replace("``", "`")
    return text.replace("|", "\\|")


def _tables(tp: Any) -> tuple[bool, list[type]]:
    """(is a list, the dataclasses it holds) for a field type; ([], False) for a plain value."""
    is_list = get_origin(tp) is tuple
    inner = get_args(tp)[0] if is_list and get_args(tp) else tp
    options = get_args(inner) if get_origin(inner) in (Union, types.UnionType) else (inner,)
    tables = [o for o in options if dataclasses.is_dataclass(o)]
    return is_list, tables


def _tag(cls: type) -> str | None:
    """The ``type`` a tagged table is told apart by (``[[sources]] type = "mqtt"``)."""
    hint = get_type_hints(cls).get("type")
    if hint is not None and get_origin(hint) is Literal:
        return str(get_args(hint)[0])
    return None


def _is_duration(tp: Any) -> bool:
    # By name: the config's Duration (seconds as a float) may live in either layer.
    return isinstance(tp, type) and tp.__name__ == "Duration" and issubclass(tp, float)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin is Literal:
        return " \\| ".join(f'`"{a}"`' for a in get_args(tp))
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if origin is dict:
        return "table"
    if _is_duration(tp):
        return "duration"
    names = {bool: "bool", int: "integer", float: "number", str: "string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _duration(seconds: float) -> str:
    """How a person writes it: ``"24h"`` rather than ``"1d"``, ``"14d"`` rather than ``"2w"``."""
    if seconds and seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{int(seconds // 86400)}d"
    for size, unit in ((3600, "h"), (60, "m"), (1, "s")):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def _toml(value: Any) -> str:
    if _is_duration(type(value)):
        return f'"{_duration(value)}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "(unset)"
    return repr(value)


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{_toml(f.default)}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{_toml(f.default_factory())}`"
    return "required"


def _section(prefix: str) -> str:
    """``"sources[mqtt]."`` -> ``'[[sources]] type = "mqtt"'``; ``"sla."`` -> ``"[sla]"``."""
    if not prefix:
        return "top level"
    path = prefix.rstrip(".")
    m = re.fullmatch(r"(.*)\[(\w*)\]", path)
    if m is None:
        return f"[{path}]"
    name = re.sub(r"\[\w*\]", "", m.group(1))
    return f'[[{name}]] type = "{m.group(2)}"' if m.group(2) else f"[[{name}]]"


def config_keys() -> list[Key]:
    """Every key ``config.toml`` accepts, walked from the ``Config`` dataclass the loader
    builds (``monitor.settings``: a field is a key; a list of tables with a ``type`` field
    is told apart by it)."""
    from monitor.config import Config

    keys: list[Key] = []

    def walk(cls: type, prefix: str) -> None:
        hints = get_type_hints(cls)
        docs = _attribute_docs(cls)
        tagged = _tag(cls) is not None
        for f in dataclasses.fields(cls):
            if not f.init or (tagged and f.name == "type"):
                continue
            tp = hints[f.name]
            is_list, tables = _tables(tp)
            if tables:
                for table in tables:
                    tag = _tag(table)
                    index = f"[{tag}]" if tag is not None else ("[]" if is_list else "")
                    walk(table, f"{prefix}{f.name}{index}.")
                continue
            keys.append(Key(path=prefix + f.name, section=_section(prefix),
                            type=_type_name(tp), default=_default(f),
                            doc=_clean(docs.get(f.name, ""))))

    walk(Config, "")
    return keys


def render_tables(keys: list[Key]) -> str:
    """The generated part of docs/configuration.md: one table per TOML table."""
    out: list[str] = [BEGIN, ""]
    first = {k.section: i for i, k in reversed(list(enumerate(keys)))}
    section = None
    for key in sorted(keys, key=lambda k: first[k.section]):  # a table's keys together
        if key.section != section:
            section = key.section
            title = "Top level" if section == "top level" else f"`{section}`"
            out += ["", f"### {title}", "", "| key | type | default | meaning |",
                    "| --- | --- | --- | --- |"]
        out.append(f"| `{key.path}` | {key.type} | {key.default} | {key.doc} |")
    out += ["", END]
    return "\n".join(out)


def _generated_part(page: str) -> str:
    assert BEGIN in page and END in page, (
        f"{CONFIG_PAGE.relative_to(ROOT)} lost its generated-table markers")
    return page[page.index(BEGIN):page.index(END) + len(END)]


def documented_keys(page: str) -> dict[str, str]:
    """key path -> its row, from the key tables of the page."""
    rows = re.findall(r"^\| `([^`]+)` \|.*$", _generated_part(page), re.M)
    lines = re.findall(r"^\| `[^`]+` \|.*$", _generated_part(page), re.M)
    return dict(zip(rows, lines, strict=True))


def write_config_page() -> None:
    page = CONFIG_PAGE.read_text(encoding="utf-8")
    fresh = render_tables(config_keys())
    CONFIG_PAGE.write_text(page.replace(_generated_part(page), fresh), encoding="utf-8")


def test_every_config_key_is_documented_and_every_documented_key_exists() -> None:
    keys = config_keys()
    page = CONFIG_PAGE.read_text(encoding="utf-8")
    documented = documented_keys(page)
    in_code = {k.path for k in keys}
    assert len(in_code) > 100  # the walk found the whole config, not one table of it
    missing = sorted(in_code - set(documented))
    stale = sorted(set(documented) - in_code)
    assert not missing and not stale, (
        f"docs/configuration.md is out of date: keys in the code but not on the page "
        f"{missing}; keys on the page but not in the code {stale}. Run "
        f"`python -m tests.unit.test_docs --write` and review the diff.")


def test_config_page_defaults_and_meanings_match_the_code() -> None:
    keys = config_keys()
    documented = documented_keys(CONFIG_PAGE.read_text(encoding="utf-8"))
    expected = {k.path: f"| `{k.path}` | {k.type} | {k.default} | {k.doc} |" for k in keys}
    changed = [(documented[p], expected[p]) for p in expected
               if p in documented and documented[p] != expected[p]]
    assert not changed, (
        "docs/configuration.md differs from the config docstrings or defaults "
        "(page, then code):\n" + "\n".join(f"  {a}\n  {b}" for a, b in changed)
        + "\nRun `python -m tests.unit.test_docs --write` and review the diff.")


def test_contract_keys_are_documented_with_their_contract_defaults() -> None:
    """INTERFACES.md section 4: the keys scripts rely on, with the defaults it shows."""
    documented = documented_keys(CONFIG_PAGE.read_text(encoding="utf-8"))
    contract = {
        "sla.warn_at": '`"3m"`', "sla.reply_within": '`"5m"`',
        "sla.escalate_after": '`"15m"`', "sla.public_followup_within": '`"30m"`',
        "crisis.window": '`["12h", "24h"]`',
        "crisis.checkpoints": '`["1h", "4h", "12h", "24h"]`',
        "crisis.statement_due": '`"1h"`',
    }
    for path, default in contract.items():
        assert f"| {default} |" in documented[path], (path, documented[path])
    for path in ("name", "keywords", "ambiguous_keywords", "context", "exclude",
                 "official_accounts"):
        assert f"brands[].{path}" in documented


def _subcommands() -> set[str]:
    import argparse

    from monitor.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("crisismon has no subcommands")


def test_readme_command_table_names_every_subcommand() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| `crisismon ([a-z-]+)", readme, re.M)
    assert table, "the README lost its command table"
    assert set(table) == _subcommands(), (
        f"README command table {sorted(table)} vs the CLI {sorted(_subcommands())}")


def test_readme_test_command_is_what_ci_runs() -> None:
    """The README's set-up commands: the daemon on the bundled default, and the tests
    exactly as `.ci/run` runs them (so CI proves the command a newcomer copies)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b.strip() for b in re.findall(r"```sh\n(.*?)```", readme, re.S)]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci.startswith("python3 -m venv .venv") and ci.endswith("python -m pytest")
    assert ci in blocks, f"the README does not give .ci/run's test command: {ci}"
    assert any(b.startswith("python3 -m venv .venv") and b.endswith("&& crisismon run")
               for b in blocks), "the README lost its one-line quick start"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_relative_links_resolve() -> None:
    broken: list[str] = []
    for md in _markdown_files():
        text = md.read_text(encoding="utf-8")
        text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks are not links
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            if not dest.exists():
                broken.append(f"{md.relative_to(ROOT)}: {target} (no such file)")
                continue
            if anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", dest.read_text(encoding="utf-8"), re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{md.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_stays_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines: details belong in docs/ (see its links)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_config_page()
        print(f"wrote {CONFIG_PAGE.relative_to(ROOT)}")
    else:
        print(render_tables(config_keys()))
