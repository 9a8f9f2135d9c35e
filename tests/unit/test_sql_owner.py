"""All SQL lives in the store: no other module runs a statement or holds SQL text.

The store (``monitor.store``) owns the schema and every query, for SQLite and PostgreSQL;
everything else calls its methods. This test reads the source (no import) and fails on a
``.execute(``-style call, a string literal shaped like SQL or a reach into the store's
connection (``store.db``) anywhere else in the product code (monitor/, alerts/, rules/).
Docstrings and comments may talk about SQL.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("monitor", "alerts", "rules")
OWNERS = ("monitor/store",)
"""The store package."""

SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bSELECT\s+(1|COUNT|MIN|MAX|COALESCE|EXTRACT|lastval|pg_)"
    r"|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(CREATE|ALTER|DROP)\s+(TABLE|INDEX|SCHEMA|VIEW)\b|\bPRAGMA\s+\w+"
    r"|\bBEGIN\s+(IMMEDIATE|EXCLUSIVE)\b|\bSAVEPOINT\s+\w+|\bROLLBACK\s+TO\b")
"""Statement shapes, upper-case as this code base writes SQL (prose says "select")."""
RUNNERS = {"execute", "executemany", "executescript"}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of string constants that are documentation: a bare string statement."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)}


def _text(node: ast.AST) -> str | None:
    """The text of a string literal, f-string or ``+`` of them (``{}`` for a value)."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) or "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        if left is not None or right is not None:
            return (left or "{}") + (right or "{}")
    return None


def _is_store(node: ast.AST) -> bool:
    """``store``, ``self.store``, ``daemon.store`` ...: a name for the store."""
    return (isinstance(node, ast.Name) and node.id == "store") or \
        (isinstance(node, ast.Attribute) and node.attr == "store")


def offences(source: str, name: str = "<src>") -> list[str]:
    """Where ``source`` runs SQL or holds SQL text: ``name:line: what``."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in RUNNERS:
            found.append(f"{name}:{node.lineno}: calls .{node.func.attr}()")
        elif isinstance(node, ast.Attribute) and node.attr == "db" and _is_store(node.value):
            found.append(f"{name}:{node.lineno}: reaches into the store's connection")
        elif isinstance(node, ast.Constant | ast.JoinedStr | ast.BinOp) and id(node) not in docs:
            text = _text(node)
            if text is not None and SQL.search(text):
                found.append(f"{name}:{node.lineno}: SQL text {text[:60]!r}")
    return found


def _product_files() -> list[Path]:
    files = [p for d in PRODUCT for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50, "the product code moved: fix PRODUCT"
    return files


def _owned(path: Path) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == o or rel.startswith(o + "/") for o in OWNERS)


def test_no_sql_outside_the_store() -> None:
    found = [o for p in _product_files() if not _owned(p)
             for o in offences(p.read_text(encoding="utf-8"), p.relative_to(ROOT).as_posix())]
    assert not found, "SQL outside the store (add a store method instead):\n" + "\n".join(found)


def test_the_store_is_where_the_sql_is() -> None:
    """The check recognises the store's own SQL (or it could not see any elsewhere)."""
    owned = [p for p in _product_files() if _owned(p)]
    assert owned, "no store modules found: fix OWNERS"
    assert sum(len(offences(p.read_text(encoding="utf-8"))) for p in owned) > 50


def test_the_check_sees_each_shape() -> None:
    for snippet in (
            'db.execute(q)',
            'conn.executemany(q, rows)',
            'q = "SELECT body FROM alerts WHERE id = ?"',
            'q = f"SELECT {cols} FROM mentions m {where}"',
            'q = "INSERT OR IGNORE INTO audit (at) VALUES (?)"',
            'q = ("UPDATE deliveries SET next_try = ? "\n     "WHERE channel = ?")',
            'q = "DELETE FROM leases WHERE owner = ?"',
            'q = "CREATE TABLE IF NOT EXISTS leases (brand TEXT)"',
            'q = "PRAGMA busy_timeout=5000"',
            'q = "SELECT 1"',
            'q = "SELECT body " + "FROM incidents"',
            'conn = daemon.store.db',
            'store.db.close()'):
        assert offences(snippet), snippet
    for fine in ('"""Runs ``PRAGMA wal_checkpoint(PASSIVE)`` from a thread."""',
                 'msg = "select the brand to update from the list"',
                 'label = "Delete from view"'):
        assert not offences(fine), fine
