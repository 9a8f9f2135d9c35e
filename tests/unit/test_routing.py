"""Routes: first match wins; on-call recipients at the alert's own time; config errors."""

from __future__ import annotations

import pytest

from alerts.oncall import OnCall, OncallConfig
from alerts.router import Router
from alerts.routing import LadderConfig, RouteConfig
from monitor.config import ConfigError, parse_config
from rules.records import Alert, AlertType
from tests.factories import T0
from tests.unit.test_oncall import SH, at

ALL = ("log", "terminal", "dingtalk", "email", "mqtt")
ROUTABLE = ("dingtalk", "email", "mqtt")
ROUTES = (
    RouteConfig(name="crisis", types=("crisis.*",), channels=("dingtalk", "email", "mqtt"),
                team="pr"),
    RouteConfig(name="bad-ones", min_severity="P2", min_level=1, channels=("dingtalk",)),
    RouteConfig(name="brand-b", brand=("小满咖啡",), channels=("email",), team="cafe"),
    RouteConfig(name="default", channels=("mqtt",)),
)


def alert(type_: str = "mention.new", severity: str = "P3", level: int = 0,
          brand: str = "快书包", t: float = T0) -> Alert:
    return Alert(id="a-1", type=AlertType(type_), at=t, brand=brand, level=level,
                 severity=severity, title="t", text="x")


@pytest.mark.parametrize(("a", "channels"), [
    (alert("crisis.opened", "P1", 2), ("log", "terminal", "dingtalk", "email", "mqtt")),
    (alert("reply.breach", "P2", 1), ("log", "terminal", "dingtalk")),
    (alert("reply.breach", "P3", 1), ("log", "terminal", "mqtt")),     # not bad enough
    (alert("reply.warning", "P1", 0), ("log", "terminal", "mqtt")),    # level too low
    (alert("mention.new", brand="小满咖啡"), ("log", "terminal", "email")),
    (alert("mention.new"), ("log", "terminal", "mqtt")),                # the default route
])
def test_first_matching_route_picks_the_channels(a: Alert, channels: tuple[str, ...]) -> None:
    router = Router(LadderConfig(), ROUTES, None, ROUTABLE)
    assert router.resolve(a, ALL)[1] == channels


def test_no_route_matching_pages_every_channel() -> None:
    router = Router(LadderConfig(), ROUTES[:1], None, ROUTABLE)
    assert router.resolve(alert(), ALL)[1] == ALL


def test_recipients_from_the_route_teams_rotation_else_default_else_ladder() -> None:
    oncall = OnCall([
        OncallConfig(team="pr", members=("小王", "小李"), level=1, start="2026-05-04"),
        OncallConfig(team="default", members=("值班甲",), level=0, start="2026-05-04"),
    ], SH)
    router = Router(LadderConfig(), ROUTES, oncall, ROUTABLE)
    week2 = at("2026-05-12T10:00:00")
    assert router.route(alert("crisis.checkpoint", "P2", 1, t=week2)).recipients == ("小李",)
    assert router.route(alert("mention.new", t=week2)).recipients == ("值班甲",)
    # No rotation for leadership anywhere: the ladder's people.
    assert router.route(alert("crisis.escalated", "P2", 2, t=week2)).recipients == ("公关负责人",)


BASE = '[[brands]]\nname = "快书包"\nkeywords = ["快书包"]\n'


def test_config_refuses_bad_matchers() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + '[[routes]]\ntypes = ["crash.*"]\nmin_severity = "P9"\n')
    text = "\n".join(err.value.problems)
    assert "routes[0].types[0]" in text and "routes[0].min_severity" in text


def test_config_refuses_unknown_and_repeated_channel_names() -> None:
    text = BASE + """
[[channels]]
type = "webhook"
name = "hook"
url = "http://127.0.0.1:9/x"
[[channels]]
type = "webhook"
name = "hook"
url = "http://127.0.0.1:9/y"
[[routes]]
channels = ["hook", "pager"]
[[paging.rate_limits]]
channel = "nope"
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    text = "\n".join(err.value.problems)
    assert "channels[1].name" in text
    assert 'routes[0].channels[1]: "pager" is not a [[channels]] name' in text
    assert "paging.rate_limits[0].channel" in text


def test_config_loads_channels_routes_oncall_and_paging() -> None:
    cfg = parse_config(BASE + """
[[channels]]
type = "webhook"
name = "hook"
url = "env:HOOK_URL"
[[routes]]
types = ["crisis.*"]
channels = ["hook"]
team = "pr"
[[oncall]]
team = "pr"
members = ["小王", "小李"]
level = 1
handover = "mon 09:00"
start = "2026-05-04"
[[oncall.overrides]]
who = "老陈"
start = "2026-05-20T18:00"
end = "2026-05-21T09:00"
[paging]
repeat_every = "5m"
[paging.quiet_hours]
start = "22:00"
end = "08:00"
""")
    assert cfg.channels[0].name == "hook" and cfg.routes[0].team == "pr"
    assert cfg.oncall[0].overrides[0].who == "老陈"
    assert cfg.paging.repeat_every == 300 and cfg.paging.quiet_hours.start == "22:00"
