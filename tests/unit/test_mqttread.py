"""``monitor.mqttread``: paho reads every packet the socket holds; property tables shared."""

from __future__ import annotations

import aiomqtt
import pytest
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from monitor.mqttread import _original_init, read_all_packets, share_property_tables


class _Stock(Properties):
    """paho's own constructor, for comparison."""


_Stock.__init__ = _original_init  # type: ignore[method-assign]


def test_shared_tables_pack_and_unpack_exactly_as_paho_does() -> None:
    share_property_tables()  # idempotent: already done at import
    ours, stock = Properties(PacketTypes.PUBLISH), _Stock(PacketTypes.PUBLISH)
    for p in (ours, stock):
        p.ContentType = "application/json"
        p.UserProperty = [("alert-id", "a-1"), ("update", "3")]
    assert ours.pack() == stock.pack()
    back = Properties(PacketTypes.PUBLISH)
    back.unpack(ours.pack())
    assert back.UserProperty == [("alert-id", "a-1"), ("update", "3")]
    assert Properties(PacketTypes.CONNACK).names is ours.names  # one copy, not one each
    assert ours.names == stock.names and ours.properties == stock.properties


def test_a_property_that_does_not_fit_the_packet_is_still_refused() -> None:
    p = Properties(PacketTypes.PUBLISH)
    try:
        p.SessionExpiryInterval = 10  # CONNECT/CONNACK/DISCONNECT only
    except Exception as exc:  # paho raises its MQTTException
        assert "does not apply" in str(exc)
    else:
        raise AssertionError("paho's validation was lost")


async def test_loop_read_reads_until_the_socket_has_no_complete_packet() -> None:
    client = aiomqtt.Client("127.0.0.1", 1883)
    paho = client._client
    results = [MQTTErrorCode.MQTT_ERR_SUCCESS] * 5 + [MQTTErrorCode.MQTT_ERR_AGAIN]
    calls = []

    def packet_read() -> MQTTErrorCode:
        calls.append(1)
        return results[len(calls) - 1]

    paho._sock = object()  # type: ignore[assignment]
    paho._packet_read = packet_read  # type: ignore[method-assign]
    read_all_packets(client, most=100)
    assert paho.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert len(calls) == 6  # five packets and the "nothing more" answer, in one call
    calls.clear()
    read_all_packets(client, most=3)
    paho.loop_read()
    assert len(calls) == 3  # bounded: one busy socket cannot starve the loop
    paho._sock = None
    assert paho.loop_read() == MQTTErrorCode.MQTT_ERR_NO_CONN


async def test_a_paho_without_those_internals_keeps_its_own_loop_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = aiomqtt.Client("127.0.0.1", 1883)
    paho = client._client
    own = paho.loop_read
    monkeypatch.delattr(type(paho), "_loop_rc_handle")  # as if paho had renamed it
    read_all_packets(client)
    assert paho.loop_read == own
