"""Secret references in the config: where a token lives, never the token itself.

A config value that holds a secret (a signing key, an SMTP password, a webhook URL that
carries its token) may be written as:

- ``"env:NAME"``: the environment variable ``NAME``;
- ``"file:/path"``: the file's contents, surrounding whitespace stripped;
- ``"credential:NAME"``: a systemd credential (``LoadCredential=NAME:/path`` in the unit),
  read from ``$CREDENTIALS_DIRECTORY/NAME``; the recommended form under systemd;
- anything else is the secret itself, literally. Allowed so a first try is easy, but
  discouraged: the config file is then as secret as the token, and ends up in backups
  and version control.

Errors name the reference (``env:DINGTALK_SECRET``) and never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SCHEMES = ("env", "file", "credential")


class SecretError(Exception):
    """A secret reference that cannot be resolved; the message is one actionable line."""


class Secret:
    """A resolved secret that prints as ``***``, so it never reaches a log or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must use it (a signature, a login)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def is_reference(ref: str) -> bool:
    """True when ``ref`` names a place (``env:``, ``file:``, ``credential:``), not a literal."""
    scheme, sep, _ = ref.partition(":")
    return bool(sep) and scheme in SCHEMES


def check_reference(ref: str) -> str | None:
    """What is wrong with the *form* of ``ref``, without reading it; None when well formed.

    Used by config validation, so ``check-config`` does not need the secrets present.
    """
    if not is_reference(ref):
        return None
    scheme, _, rest = ref.partition(":")
    if not rest:
        return f'"{ref}" names no {"variable" if scheme == "env" else "file"}'
    if scheme == "credential" and ("/" in rest or rest in (".", "..")):
        return f'"{ref}": a credential name is a plain file name, not a path'
    if scheme == "file" and not Path(rest).is_absolute():
        return f'"{ref}": use an absolute path after "file:"'
    return None


def resolve_secret(ref: str, environ: Mapping[str, str] | None = None) -> str:
    """The secret that ``ref`` points at (see the module docstring for the forms).

    Raises :class:`SecretError` naming ``ref`` when the place is missing or empty:
    an empty secret is always a mistake, and failing at start-up beats failing at 3 a.m.
    on the first page.
    """
    env = os.environ if environ is None else environ
    if not is_reference(ref):
        return ref
    problem = check_reference(ref)
    if problem:
        raise SecretError(f"secret {problem}")
    scheme, _, name = ref.partition(":")
    if scheme == "env":
        value = env.get(name)
        if value is None:
            raise SecretError(f"secret {ref}: environment variable {name} is not set")
    else:
        if scheme == "credential":
            folder = env.get("CREDENTIALS_DIRECTORY")
            if not folder:
                raise SecretError(f"secret {ref}: $CREDENTIALS_DIRECTORY is not set "
                                  f"(run under systemd with LoadCredential={name}:/path)")
            path = Path(folder) / name
        else:
            path = Path(name)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise SecretError(f"secret {ref}: no such file {path}") from None
        except PermissionError:
            raise SecretError(f"secret {ref}: cannot read {path} (permission denied)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"secret {ref}: cannot read {path} ({type(exc).__name__})") from None
    if not value:
        raise SecretError(f"secret {ref} is empty")
    return value


def load_secret(ref: str, environ: Mapping[str, str] | None = None) -> Secret:
    """:func:`resolve_secret` wrapped in :class:`Secret`; ``""`` gives an empty Secret."""
    return Secret(resolve_secret(ref, environ) if ref else "")
