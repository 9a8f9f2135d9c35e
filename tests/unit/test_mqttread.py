"""``monitor.mqttread``: paho reads every packet the socket holds; property tables shared."""

from __future__ import annotations

import aiomqtt
import pytest
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from monitor.mqttread import (
    _original_init,
    lazy_publish_conditions,
    lean_publish,
    read_all_packets,
    share_property_tables,
)


class _Stock(Properties):
    """paho's own constructor, for comparison."""


_Stock.__init__ = _original_init  # type: ignore[method-assign]


def test_shared_tables_pack_and_unpack_exactly_as_paho_does() -> None:
    share_property_tables()  # idempotent (install_patches makes it at daemon start)
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


def _publish_packet(topic: bytes, payload: bytes, qos: int, mid: int, v5: bool,
                    props: bytes = b"\x00") -> bytearray:
    """A PUBLISH packet's variable header and payload, as paho holds it after reading."""
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    if v5:
        body += props
    return bytearray(body + payload)


def _received(client: aiomqtt.Client) -> list[tuple[str, bytes, int, bool, int]]:
    out = []
    while not client._queue.empty():
        m = client._queue.get_nowait()
        out.append((str(m.topic), m.payload, m.qos, m.retain, m.mid))
    return out


@pytest.mark.parametrize("v5", [True, False])
async def test_lean_publish_queues_what_paho_itself_would(v5: bool) -> None:
    protocol = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.UserProperty = [("k", "值")]
    packets = [
        (0x30, _publish_packet(b"feed/posts", b'{"id": 1}', 0, 0, v5)),
        (0x32, _publish_packet(b"feed/posts", '{"text": "小满咖啡"}'.encode(), 1, 513, v5,
                               props.pack())),
        (0x33, _publish_packet("微博/帖子".encode(), b"", 1, 65535, v5)),  # retained, empty
    ]
    stock, lean = aiomqtt.Client("127.0.0.1", 1883, protocol=protocol), \
        aiomqtt.Client("127.0.0.1", 1883, protocol=protocol)
    lean_publish(lean)
    for client in (stock, lean):
        client._client.manual_ack_set(True)  # PUBACK after storing, as the source does
        for command, packet in packets:
            client._client._in_packet = {"command": command, "packet": bytearray(packet)}
            assert client._client._handle_publish() == MQTTErrorCode.MQTT_ERR_SUCCESS
    got = _received(lean)
    assert got == _received(stock)
    assert [m[4] for m in got] == [0, 513, 65535] and got[2][3] is True


async def test_lean_publish_leaves_qos2_and_malformed_packets_to_paho() -> None:
    client = aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5)
    paho = client._client
    seen: list[int] = []
    paho._handle_publish = lambda: seen.append(paho._in_packet["command"]) or 0  # type: ignore
    lean_publish(client)
    truncated = _publish_packet(b"t", b"", 1, 7, True, props=b"\x09\x03")  # 9 bytes promised
    for command, packet in [(0x34, _publish_packet(b"t", b"x", 2, 7, True)),
                            (0x32, truncated),
                            (0x30, bytearray(b"\x00\x02\xff\xfe\x00"))]:  # topic not UTF-8
        paho._in_packet = {"command": command, "packet": packet}
        paho._handle_publish()
    assert seen == [0x34, 0x32, 0x30] and client._queue.empty()


def test_publish_info_makes_its_condition_only_for_a_waiter() -> None:
    import threading
    import time

    from paho.mqtt.client import MQTTMessageInfo

    lazy_publish_conditions()  # idempotent (install_patches makes it at daemon start)
    info = MQTTMessageInfo(5)
    assert (info.mid, info.rc, tuple(info)) == (5, MQTTErrorCode.MQTT_ERR_SUCCESS,
                                                (MQTTErrorCode.MQTT_ERR_SUCCESS, 5))
    info._set_as_published()  # no waiter: no condition, the flag is set
    assert "_condition" in type(info).__dict__ and info.is_published()
    info.wait_for_publish(timeout=1.0)  # published before the wait: returns at once

    waiting = MQTTMessageInfo(6)
    done: list[float] = []
    waiter = threading.Thread(target=lambda: (waiting.wait_for_publish(),
                                              done.append(time.monotonic())))
    waiter.start()
    started = time.monotonic()
    waiting._set_as_published()  # wakes a waiter with no timeout (or one still to come)
    waiter.join(5.0)
    assert not waiter.is_alive() and done and done[0] - started < 5.0
    assert waiting.is_published()


async def test_patches_are_made_only_on_a_tested_paho_release(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from paho.mqtt.client import MQTTMessageInfo

    from monitor import mqttread

    # An untested release: nothing of paho's is touched (paho's own code is kept).
    monkeypatch.setattr(Properties, "__init__", _original_init)
    info_init = MQTTMessageInfo.__init__  # (patched or not, by an earlier test)
    monkeypatch.setattr(mqttread, "paho_version", "3.0.0")
    assert mqttread.install_patches() is False
    assert Properties.__init__ is _original_init and MQTTMessageInfo.__init__ is info_init
    client = aiomqtt.Client("127.0.0.1", 1883)
    own_read, own_publish = client._client.loop_read, client._client._handle_publish
    read_all_packets(client)
    lean_publish(client)
    assert client._client.loop_read == own_read
    assert client._client._handle_publish == own_publish
    # A tested release: the class patches are made.
    monkeypatch.setattr(mqttread, "paho_version", mqttread.TESTED_PAHO[-1] + "0")
    assert mqttread.install_patches() is True
    assert Properties.__init__ is not _original_init


def test_importing_mqttread_patches_nothing() -> None:
    import subprocess
    import sys

    code = ("from paho.mqtt.properties import Properties; from paho.mqtt.client import "
            "MQTTMessageInfo as I; a, b = Properties.__init__, I.__init__; "
            "import monitor.mqttread as m; assert Properties.__init__ is a and I.__init__ is b; "
            "m.install_patches(); assert Properties.__init__ is not a and I.__init__ is not b")
    subprocess.run([sys.executable, "-c", code], check=True)


def _wire(command: int, body: bytes) -> bytes:
    """A whole packet as it comes off the socket: command, remaining length, body."""
    length, out = len(body), bytearray([command])
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out + body)


async def test_handle_packets_cuts_whole_packets_and_keeps_a_partial_one() -> None:
    from monitor.mqttread import handle_packets

    client = aiomqtt.Client("127.0.0.1", 1883)
    paho = client._client
    seen: list[tuple[int, bytes, int]] = []
    paho._packet_handle = lambda: seen.append(  # type: ignore[method-assign]
        (paho._in_packet["command"], bytes(paho._in_packet["packet"]),
         paho._in_packet["remaining_length"])) or MQTTErrorCode.MQTT_ERR_SUCCESS
    big = bytes(range(256)) * 2  # a two-byte remaining length (512)
    stream = _wire(0x40, b"\x00\x07") + _wire(0x30, big) + _wire(0x32, b"x" * 130)
    buf = bytearray()
    # The bytes arrive in pieces, cut anywhere: each packet is handled once, whole, in order.
    fed = 0
    for step in (1, 1, 2, 7, 300, 220, 1000):
        buf.extend(stream[fed:fed + step])
        fed += step
        rc, _n = handle_packets(paho, buf)
        assert rc == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert fed >= len(stream) and not buf
    assert seen == [(0x40, b"\x00\x07", 2), (0x30, big, 512), (0x32, b"x" * 130, 130)]
    assert paho._in_packet["command"] == 0  # left as paho's own reader leaves it


async def test_handle_packets_stops_at_a_length_paho_refuses() -> None:
    from monitor.mqttread import handle_packets

    client = aiomqtt.Client("127.0.0.1", 1883)
    paho = client._client
    paho._packet_handle = lambda: MQTTErrorCode.MQTT_ERR_SUCCESS  # type: ignore[method-assign]
    rc, n = handle_packets(paho, bytearray(b"\x30\xff\xff\xff\xff\x01"))  # five length bytes
    assert (rc, n) == (MQTTErrorCode.MQTT_ERR_PROTOCOL, 0)


@pytest.mark.parametrize("v5", [True, False])
async def test_lean_puback_reaches_paho_bookkeeping_as_paho_does(v5: bool) -> None:
    from monitor.mqttread import lean_puback

    protocol = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    packets = [b"\x00\x05", b"\x01\x00"] + ([b"\x00\x06\x00", b"\x00\x07\x00\x00",
                                              b"\x00\x08\x10"] if v5 else [])
    results = []
    for lean in (False, True):
        client = aiomqtt.Client("127.0.0.1", 1883, protocol=protocol)
        paho = client._client
        acked: list[tuple[int, int]] = []
        paho._do_on_publish = lambda mid, reason, props, acked=acked: (  # type: ignore
            acked.append((mid, reason.value)), MQTTErrorCode.MQTT_ERR_SUCCESS)[1]
        for mid in (5, 6, 7, 8, 256):
            paho._out_messages[mid] = object()  # type: ignore[assignment]
        if lean:
            lean_puback(client)
        for packet in [*packets, b"\x00\x09"]:  # 9: not ours, nothing to do
            paho._in_packet = {"command": 0x40, "packet": bytearray(packet)}
            assert paho._handle_pubackcomp("PUBACK") == MQTTErrorCode.MQTT_ERR_SUCCESS
        results.append(acked)
    assert results[0] == results[1]
    assert [m for m, _ in results[1]] == [5, 256, *([6, 7, 8] if v5 else [])]
    assert (8, 0x10) in results[1] if v5 else True  # "no matching subscribers": paho's path


async def test_loop_read_on_a_socket_reads_all_it_holds_in_few_calls() -> None:
    import socket

    client = aiomqtt.Client("127.0.0.1", 1883)
    paho = client._client
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    try:
        paho._sock = ours  # type: ignore[assignment]
        seen: list[bytes] = []
        paho._packet_handle = lambda: seen.append(  # type: ignore[method-assign]
            bytes(paho._in_packet["packet"])) or MQTTErrorCode.MQTT_ERR_SUCCESS
        read_all_packets(client)
        bodies = [f"post {n}".encode() * (n % 50 + 1) for n in range(300)]
        stream = b"".join(_wire(0x30, b) for b in bodies)
        theirs.sendall(stream[:1001])  # a packet cut in two
        assert paho.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
        first = len(seen)
        assert 0 < first < 300 and seen == bodies[:first]
        theirs.sendall(stream[1001:])
        while len(seen) < 300 and paho.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            pass
        assert seen == bodies
        theirs.close()  # the broker went away: paho's "connection lost"
        lost: list[int] = []
        paho._loop_rc_handle = lambda rc: lost.append(rc) or rc  # type: ignore
        paho.loop_read()
        assert lost == [MQTTErrorCode.MQTT_ERR_CONN_LOST]
    finally:
        paho._sock = None
        ours.close()


async def test_coalesced_writes_send_the_same_bytes_in_few_calls() -> None:
    import socket

    from monitor.mqttread import coalesce_writes

    class Socket(socket.socket):
        """Takes at most ``room`` bytes a call, then says "would block" once."""

        def __init__(self) -> None:
            super().__init__()
            self.room, self.calls, self.got, self.full = 700, 0, bytearray(), False

        def send(self, data: bytes, flags: int = 0) -> int:  # type: ignore[override]
            self.calls += 1
            if self.full:
                self.full = False
                raise BlockingIOError
            self.full = True
            self.got += bytes(data[:self.room])
            return min(len(data), self.room)

    client = aiomqtt.Client("127.0.0.1", 1883)
    paho = client._client
    sock = Socket()
    try:
        paho._sock = sock  # type: ignore[assignment]
        coalesce_writes(client)
        packets = [(0x40, bytearray(b"\x40\x02\x00" + bytes([n]))) for n in range(100)]
        packets += [(0x32, bytearray(b"\x32\x05\x00\x01t\x00\x01")),  # QoS 1 PUBLISH
                    (0x30, bytearray(b"\x30\x03\x00\x01u"))]  # QoS 0
        for command, packet in packets:
            paho._out_packet.append({"command": command, "mid": 0, "qos": command >> 1 & 3,
                                     "pos": 0, "to_process": len(packet), "packet": packet,
                                     "info": None})
        rcs = []
        while paho._out_packet and len(rcs) < 20:
            if paho._out_packet[0]["command"] == 0x30:  # QoS 0 last: paho's own path
                break
            rcs.append(paho._packet_write())
        stream = b"".join(p for _, p in packets[:-1])
        assert bytes(sock.got) == stream  # in order, nothing twice, cut packets resumed
        assert sock.calls < 10 and MQTTErrorCode.MQTT_ERR_AGAIN in rcs
        assert [p["command"] for p in paho._out_packet] == [0x30]
    finally:
        paho._sock = None
        sock.close()


async def test_ack_all_queues_the_bytes_paho_acks_would_in_one_packet() -> None:
    from monitor.mqttread import ack_all

    mids = [1, 2, 300, 65535]
    queued = {}
    for name in ("paho", "ack_all"):
        client = aiomqtt.Client("127.0.0.1", 1883)
        paho = client._client
        paho.manual_ack_set(True)
        paho._call_socket_register_write = lambda: None  # type: ignore[method-assign]
        if name == "paho":
            for mid in mids:
                paho.ack(mid, 1)
        else:
            ack_all(client, mids)
        queued[name] = [p["packet"] for p in paho._out_packet]
    assert b"".join(queued["ack_all"]) == b"".join(queued["paho"])
    assert len(queued["ack_all"]) == 1 and len(queued["paho"]) == len(mids)


@pytest.mark.parametrize("v5", [True, False])
async def test_handle_packets_queues_publishes_as_paho_and_lean_publish_do(v5: bool) -> None:
    """``handle_packets`` hands a PUBLISH to ``lean_publish``'s handler directly: the same
    messages queued as through paho's own handling, and what the lean path leaves (QoS 2,
    malformed) still reaches paho, in order."""
    from monitor.mqttread import handle_packets

    protocol = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    stream = b"".join([
        _wire(0x30, _publish_packet(b"feed/posts", b'{"id": 1}', 0, 0, v5)),
        _wire(0x32, _publish_packet(b"feed/posts", '{"text": "小满"}'.encode(), 1, 513, v5)),
        _wire(0x34, _publish_packet(b"t", b"q2", 2, 9, v5)),
        _wire(0x30, b"\x00\x02\xff\xfe\x00"),  # topic not UTF-8
        _wire(0x33, _publish_packet("微博/帖子".encode(), b"", 1, 65535, v5))])
    got, left = {}, {}
    for name in ("stock", "lean"):
        client = aiomqtt.Client("127.0.0.1", 1883, protocol=protocol)
        paho = client._client
        paho.manual_ack_set(True)
        seen: list[int] = []
        paho._handle_publish = lambda p=paho, s=seen: s.append(  # type: ignore[misc]
            p._in_packet["command"]) or MQTTErrorCode.MQTT_ERR_SUCCESS
        if name == "lean":
            lean_publish(client)
        dispatched: list[int] = []
        handle = paho._packet_handle
        paho._packet_handle = lambda h=handle, d=dispatched, p=paho: d.append(  # type: ignore
            p._in_packet["command"]) or h()
        buf = bytearray(stream)
        rc, n = handle_packets(paho, buf)
        assert rc == MQTTErrorCode.MQTT_ERR_SUCCESS and n == 5 and not buf
        got[name], left[name] = _received(client), seen
        assert dispatched == seen  # paho's dispatch only for what reaches paho's handler
    assert left["stock"] == [0x30, 0x32, 0x34, 0x30, 0x33]  # paho's path for each
    assert left["lean"] == [0x34, 0x30]  # only what the lean path leaves to paho
    assert [m[4] for m in got["lean"]] == [0, 513, 65535]
    assert got["lean"][1][:2] == ("feed/posts", '{"text": "小满"}'.encode())


async def test_hold_reads_raises_the_sockets_low_mark_until_released() -> None:
    import socket

    from monitor.mqttread import hold_reads, release_reads

    client = aiomqtt.Client("127.0.0.1", 1883)
    paho = client._client
    assert not hold_reads(client)  # no socket yet: nothing held
    ours, theirs = socket.socketpair()
    reads: list[int] = []
    try:
        paho._sock = ours  # type: ignore[assignment]
        paho.loop_read = lambda *a: reads.append(1) or MQTTErrorCode.MQTT_ERR_SUCCESS  # type: ignore
        assert hold_reads(client)
        assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) > 1
        assert reads == []
        release_reads(client)  # back to every byte, and what gathered is read at once
        assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
        assert reads == [1]
    finally:
        paho._sock = None
        ours.close()
        theirs.close()
