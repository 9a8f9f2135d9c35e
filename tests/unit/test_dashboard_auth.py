"""Dashboard sign-in, display hygiene and the http section of the config (no browser).

The browser side is in tests/integration/test_dashboard.py; here the pieces it stands on:
the session cookie (signed with the token it was issued for, expiring on an injected
wall clock), per-person tokens, texts cleaned for a terminal or a page, the work queue's
order, and the refusal to serve plain HTTP beyond loopback.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from alerts.channels.terminal import TerminalChannel, format_line
from monitor.config import ConfigError, HttpConfig, is_loopback, parse_config
from monitor.dashboard import state_counts, urgency
from monitor.http import Auth, Identity, serve
from monitor.normalise import to_event
from monitor.textsafe import printable
from rules.records import DEFAULT_TZ, Alert, AlertType

BRANDS = '[[brands]]\nname = "快书包"\nkeywords = ["快书包"]\n'
HOSTILE = "\x1b[2J\x1b]0;pwned\x07坏\u202e人\u2066\u200f\x85\x9b31m"


class Wall:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# ------------------------------------------------------------------ printable
@pytest.mark.parametrize("text", ["快书包送货太慢了[怒]", "plain ascii", "", "全角　空格 😀"])
def test_printable_keeps_visible_text(text: str) -> None:
    assert printable(text) == text


def test_printable_drops_controls_and_bidi_and_spaces_line_breaks() -> None:
    cleaned = printable(HOSTILE + "\n第二行\r\n\u2028第三行")
    assert cleaned == "[2J]0;pwned坏人 31m 第二行 第三行"  # NEL (\x85) is a line break
    assert all(c.isprintable() for c in cleaned)


def test_printable_can_keep_lines_for_a_block() -> None:
    block = printable("第一行\x1b[2J\r\n第二\u202e行\n\t缩进", keep_lines=True)
    assert block == "第一行[2J\n第二行\n 缩进"


def _alert(title: str, brand: str = "快书包") -> Alert:
    return Alert(id="a-1", type=AlertType.MENTION_NEW, at=1_779_242_400.0, brand=brand,
                 level=0, severity="P3", title=title, text=title, post_id="9\x1b[2J",
                 recipients=("值班\u202e",))


@pytest.mark.parametrize("colour", [False, True])
def test_terminal_lines_carry_no_escape_from_the_data(colour: bool) -> None:
    line = format_line(_alert(f"新提及 @{HOSTILE}", brand="快\x1b[31m书包"), colour=colour)
    ours = {"\x1b[0m", "\x1b[2m", "\x1b[1m", "\x1b[1;97;41m", "\x1b[33m"} if colour else set()
    for code in ours:
        line = line.replace(code, "")
    assert "\x1b" not in line and "\u202e" not in line and "\x9b" not in line, repr(line)
    assert "\n" not in line and "坏人" in line
    plain = format_line(_alert(f"新提及 @{HOSTILE}\n第二行"), DEFAULT_TZ)
    assert "\x1b" not in plain and "\u202e" not in plain and "\n" not in plain


async def test_terminal_channel_writes_one_clean_line() -> None:
    out = io.StringIO()
    await TerminalChannel(stream=out, color="never").send(_alert(f"@{HOSTILE}"))
    assert out.getvalue().count("\n") == 1 and "\x1b" not in out.getvalue()


def test_author_names_are_cleaned_at_the_edge() -> None:
    raw = {"id": 1, "created_at": "2026-05-20T10:00:00+08:00", "text": "快书包",
           "user": {"id": 2, "screen_name": HOSTILE}}
    post = to_event(raw)
    name = post.author.screen_name  # type: ignore[union-attr]
    assert name == printable(HOSTILE) and "\x1b" not in name and "\u202e" not in name


# ------------------------------------------------------------------ sessions
def test_session_cookie_round_trip_expiry_and_token_change() -> None:
    wall = Wall()
    auth = Auth("shared-token", {"小王": "xw-token"}, ttl=3600, wall=wall)
    shared = auth.session_cookie(Identity(None, "cookie"))
    mine = auth.session_cookie(Identity("小王", "cookie"))
    assert "shared-token" not in shared and "xw-token" not in mine
    assert auth.from_cookie(shared) == Identity(None, "cookie")
    assert auth.from_cookie(mine) == Identity("小王", "cookie")
    wall.t += 3599
    assert auth.from_cookie(mine) is not None
    wall.t += 2
    assert auth.from_cookie(mine) is None  # expired
    wall.t -= 10
    # Signed with the token it was issued for: a changed token ends the session.
    assert Auth("new-token", {"小王": "xw-token"}, 3600, wall).from_cookie(shared) is None
    assert Auth("shared-token", {"小王": "other"}, 3600, wall).from_cookie(mine) is None
    assert Auth("shared-token", {"小王": "xw-token"}, 3600, wall).from_cookie(mine)


@pytest.mark.parametrize("forge", [
    lambda c: c.replace("v1.", "v2.", 1),
    lambda c: c.rsplit(".", 1)[0] + ".AAAA",
    lambda c: ".".join([*c.split(".")[:2], str(int(c.split(".")[2]) + 10**6), c.split(".")[3]]),
    lambda c: "v1.5bCP546L.99999999999." + c.split(".")[3],  # another name, same signature
    lambda c: "garbage", lambda c: "", lambda c: "v1.%%%.1.x",
])
def test_a_forged_cookie_is_refused(forge: Any) -> None:
    auth = Auth("shared-token", {"小王": "xw-token", "老张": "lz-token"}, 3600, Wall())
    cookie = auth.session_cookie(Identity("老张", "cookie"))
    assert auth.from_cookie(cookie) is not None
    assert auth.from_cookie(forge(cookie)) is None


def test_bearer_tokens_name_the_person() -> None:
    auth = Auth("shared", {"小王": "xw", "老张": "lz"})
    assert auth.check_token("shared") == Identity(None, "bearer")
    assert auth.check_token("xw") == Identity("小王", "bearer")
    assert auth.check_token("lz") == Identity("老张", "bearer")
    for wrong in ("", "x", "shared ", "XW", "lzz"):
        assert auth.check_token(wrong) is None
    assert Auth("").check_token("") is None


# ------------------------------------------------------------------ work queue
def _m(key: str, severity: str, created: float, acked: str | None = None) -> dict[str, Any]:
    return {"key": key, "severity": severity, "created_at": created,
            "warn_at": created + 180, "deadline": created + 300, "acked_by": acked,
            "replied_at": None}


def test_urgency_p1_first_then_time_left_then_fresh_breaches() -> None:
    now = 10_000.0
    items = [
        _m("p4-breached-3h", "P4", now - 3 * 3600),
        _m("p2-breached-2h", "P2", now - 2 * 3600),
        _m("p2-breached-1m", "P2", now - 360),
        _m("p3-1m-left", "P3", now - 240),
        _m("p4-4m-left", "P4", now - 60),
        _m("p3-4m-left", "P3", now - 60),
        _m("p1-breached-1h", "P1", now - 3600),
        _m("p1-2m-left", "P1", now - 180),
    ]
    order = [m["key"] for m in sorted(items, key=lambda m: urgency(m, now))]
    assert order == ["p1-2m-left", "p1-breached-1h", "p3-1m-left", "p3-4m-left",
                     "p4-4m-left", "p2-breached-1m", "p2-breached-2h", "p4-breached-3h"]
    counts = state_counts(items, now)
    assert counts == {"open": 8, "in_time": 2, "warning": 2, "breached": 4, "acked": 0,
                      "p1": 2}


# ------------------------------------------------------------------ listen / TLS
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]", "::1"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "192.168.1.5", "example.com", ""])
def test_hosts_beyond_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("listen", ["0.0.0.0:8787", "[::]:8787", "10.0.0.5:80"])
def test_plain_http_beyond_loopback_is_refused_with_the_key_path(listen: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BRANDS + f'[http]\nlisten = "{listen}"\n')
    assert any(p.startswith("http.listen: ") and "allow_plain_public" in p
               for p in err.value.problems), err.value.problems
    ok = parse_config(BRANDS + f'[http]\nlisten = "{listen}"\nallow_plain_public = true\n')
    assert ok.http.allow_plain_public
    tls = parse_config(BRANDS + f'[http]\nlisten = "{listen}"\ntls_cert = "c.pem"\n'
                       'tls_key = "k.pem"\n')
    assert tls.http.tls


def test_http_users_and_tls_pairs_are_checked() -> None:
    cfg = parse_config(BRANDS + '[[http.users]]\nname = "小王"\ntoken = "env:XW_TOKEN"\n'
                       '[[http.users]]\nname = "老张"\ntoken = "file:/etc/crisismon/lz"\n')
    assert [u.name for u in cfg.http.users] == ["小王", "老张"]
    for bad, where in (('[[http.users]]\nname = ""\ntoken = "env:X"\n', "http.users[0].name"),
                       ('[[http.users]]\nname = "a\\u202e"\ntoken = "env:X"\n',
                        "http.users[0].name"),
                       ('[[http.users]]\nname = "a"\ntoken = "file:rel"\n',
                        "http.users[0].token"),
                       ('[[http.users]]\nname = "a"\n', "http.users[0].token"),
                       ('[http]\ntls_cert = "c.pem"\n', "http.tls_key"),
                       ('[http]\nsession_ttl = "0s"\n', "http.session_ttl")):
        with pytest.raises(ConfigError) as err:
            parse_config(BRANDS + bad)
        assert any(p.startswith(where + ":") for p in err.value.problems), \
            (bad, err.value.problems)


async def test_serve_refuses_plain_public_http_built_in_code() -> None:
    from aiohttp import web

    with pytest.raises(ConfigError, match=r"http\.listen"):
        await serve(web.Application(), HttpConfig(listen="0.0.0.0:0"))
