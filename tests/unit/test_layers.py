"""The import contract (issue 19): layers point one way, the engine loads no network
library, and no module patches a third party's code when it is imported.

The layers, bottom first. A module may import from its own layer and the layers below it,
never from a layer above, at module level or inside a function alike.

| layer     | holds                                                                      |
|-----------|----------------------------------------------------------------------------|
| rules     | records, policy, matching, scoring, the escalation engine (and ``seeds``)   |
| base      | the few ``monitor`` modules ``alerts`` needs: clock, store, locks, retry,   |
|           | secrets, text cleaning, paho helpers, forked worker processes (the store's  |
|           | writer is one). They belong below alerts but live in                        |
|           | monitor/ today; the store is moving to its own package (issue 19).          |
| alerts    | records to pages: outbox, router, paging noise control, channels           |
| monitor   | sources, pipeline, daemon, API, CLI: everything that wires the rest         |

So ``rules`` imports nothing from ``monitor`` or ``alerts``; ``alerts`` imports from
``monitor`` only the ``base`` modules, and they import nothing from ``alerts``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rules", "alerts", "monitor", "seeds")

BASE = ("monitor.clock", "monitor.locks", "monitor.mqttread", "monitor.retry",
        "monitor.secrets", "monitor.store", "monitor.textsafe", "monitor.workers")
"""``monitor`` modules in the ``base`` layer (see the module docstring)."""

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("rules", ("rules", "seeds")),
    ("base", BASE),
    ("alerts", ("alerts",)),
    ("monitor", ("monitor",)),
]
"""Bottom first: (layer, the module prefixes it holds). The longest prefix that matches a
module says its layer (``monitor.store`` is ``base``, ``monitor.daemon`` is ``monitor``)."""

NETWORK = ("aiohttp", "aiomqtt", "aiosmtplib", "paho", "asyncpg", "psycopg")


def layer_of(module: str) -> int | None:
    """Index in LAYERS of ``module``'s layer; None for a module outside the project."""
    matches = [(len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
               if module == p or module.startswith(p + ".")]
    return max(matches)[1] if matches else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, wherever it is (a function's
    lazy import is a dependency too). ``from a import b`` counts as ``a.b`` when ``a.b`` is
    a module, so ``from monitor import api`` is an import of ``monitor.api``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return found


def resolve(name: str, modules: dict[str, Path]) -> str:
    """``a.b.c`` -> the longest prefix that is a project module (``a.b`` for a name)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def test_the_layer_table_covers_every_project_module() -> None:
    modules = project_modules()
    assert "rules.engine" in modules and "monitor.daemon" in modules  # the scan sees the code
    assert [m for m in modules if layer_of(m) is None] == []
    for m in BASE:
        assert m in modules, f"{m} in BASE is not a module any more: update the table"


def test_imports_point_down_the_layers() -> None:
    modules = project_modules()
    wrong = []
    for module, path in modules.items():
        mine = layer_of(module)
        assert mine is not None
        for line, name in imports(path, module):
            target = resolve(name, modules)
            theirs = layer_of(target) if target else None
            if theirs is not None and theirs > mine:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} ({LAYERS[mine][0]}) "
                             f"imports {target} ({LAYERS[theirs][0]})")
    wrong = list(dict.fromkeys(wrong))  # one line per import statement
    assert wrong == [], "imports against the layer order:\n" + "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    # The scan must catch the cases it exists for: plain, from-package and lazy imports.
    src = tmp_path / "engine.py"
    src.write_text("from monitor import config\n"
                   "def f():\n    import alerts.outbox\n    from monitor.model import Post\n")
    modules = project_modules()
    found = [resolve(n, modules) for _, n in imports(src, "rules.engine")]
    assert found[:2] == ["monitor.config", "alerts.outbox"] and found[2] == "monitor"
    assert all(layer_of(m) > layer_of("rules.engine") for m in found)  # type: ignore[operator]


def _run(code: str) -> object:
    """Run ``code`` in a fresh interpreter (this one has imported everything); its last
    line prints JSON."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


_LOADED = ("import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules "
           f"if m.split('.')[0] in {NETWORK!r}}})))")


def test_importing_the_engine_loads_no_network_library() -> None:
    assert _run("import rules.engine, rules.scoring, rules.matching\n" + _LOADED) == []


def test_loading_a_config_with_every_channel_kind_loads_no_network_library() -> None:
    # Checking a channel's settings needs none of its library; building the channel
    # imports it (here: the MQTT channel, so aiomqtt and paho, and nothing for e-mail).
    code = """
from monitor.config import parse_config
from alerts.channels.registry import build_channel
config = parse_config('''
[[brands]]
name = "小满咖啡"
keywords = ["小满咖啡"]
[[channels]]
type = "mqtt"
name = "wall"
[[channels]]
type = "email"
name = "mail"
sender = "crisismon <a@example.com>"
to = ["pr@example.com"]
[[channels]]
type = "webhook"
name = "hook"
url = "https://example.com/hook"
[[channels]]
type = "dingtalk"
name = "ding"
url = "https://oapi.dingtalk.com/robot/send?access_token=x"
''')
import json, sys
net = lambda: sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in NETWORK})
before = net()
build_channel(config.channels[0], config.tz)
print(json.dumps([len(config.channels), before, net()]))
""".replace("NETWORK", repr(NETWORK))
    assert _run(code) == [4, [], ["aiomqtt", "paho"]]


def test_the_daemon_imports_no_channel_until_one_is_configured() -> None:
    # The whole program (CLI, daemon, paging, HTTP server) imported: the channel modules
    # stay unloaded until build_channel makes one, and then only that kind's (the
    # terminal too: the daemon imports it when ``[alerts] terminal`` is on).
    from alerts.channels.registry import IMPLEMENTATIONS

    kinds = sorted(IMPLEMENTATIONS)
    code = f"""
import json, sys
import monitor.cli, monitor.daemon, monitor.paging
from alerts.channels.options import WebhookChannelConfig
from alerts.channels.registry import build_channel
loaded = lambda: sorted(k for k in {kinds!r} if f'alerts.channels.{{k}}' in sys.modules)
before = loaded()
build_channel(WebhookChannelConfig(type="webhook", name="w", url="https://example.com/h"))
print(json.dumps([before, loaded()]))
"""
    assert _run(code) == [[], ["webhook"]]


def test_a_bad_channel_option_is_still_refused_with_its_key() -> None:
    from monitor.config import ConfigError, parse_config

    try:
        parse_config('[[brands]]\nname = "b"\nkeywords = ["b"]\n'
                     '[[channels]]\ntype = "mqtt"\nname = "m"\nport = 0\n')
    except ConfigError as exc:
        assert any(p.startswith("channels[0].port:") for p in exc.problems), exc.problems
    else:
        raise AssertionError("port = 0 was accepted")


_SNAPSHOT = """
import json, sys, importlib
def third_party(name):
    top = name.split('.')[0]
    return top not in sys.stdlib_module_names and top not in PACKAGES and top != '__main__'
def snapshot():
    state = {}
    for name, mod in list(sys.modules.items()):
        if mod is None or not third_party(name):
            continue
        for attr, value in list(vars(mod).items()):
            if isinstance(value, type) and getattr(value, '__module__', None) == name:
                state[f'{name}.{attr}'] = {k: id(v) for k, v in vars(value).items()}
    return state
"""


def test_no_module_patches_a_third_party_on_import() -> None:
    # Import the third-party modules the project uses, note every class of theirs, then
    # import every project module: no class may have gained or changed an attribute.
    modules = project_modules()
    third = sorted({name for m, p in modules.items() for _, name in imports(p, m)
                    if name.split(".")[0] not in (*PACKAGES, "tests", "bench")
                    and name.split(".")[0] not in sys.stdlib_module_names})
    code = _SNAPSHOT.replace("PACKAGES", repr(PACKAGES)) + f"""
for name in {third!r}:
    for candidate in (name, name.rpartition('.')[0]):
        try:
            importlib.import_module(candidate)
            break
        except ImportError:
            pass
before = snapshot()
for name in {sorted(modules)!r}:
    if name != 'seeds.make_sample_feed':
        importlib.import_module(name)
after = snapshot()
changed = sorted(f'{{cls}}.{{k}}' for cls, attrs in before.items()
                 for k in set(attrs) | set(after[cls]) if attrs.get(k) != after[cls].get(k))
print(json.dumps([len(before), changed]))
"""
    classes, changed = _run(code)  # type: ignore[misc]
    assert classes > 100  # paho's, aiohttp's, msgspec's ... classes were looked at
    assert changed == [], f"patched on import: {changed}"


def test_the_patch_check_sees_a_patch_made_on_import() -> None:
    code = _SNAPSHOT.replace("PACKAGES", repr(PACKAGES)) + """
import paho.mqtt.properties as p
before = snapshot()
import monitor.mqttread as m
m.install_patches()
after = snapshot()
print(json.dumps(sorted(k for k, v in before['paho.mqtt.properties.Properties'].items()
                        if after['paho.mqtt.properties.Properties'].get(k) != v)))
"""
    assert _run(code) == ["__init__"]
