"""Cheaper MQTT packet handling for the live path (paho under aiomqtt).

Costs found by profiling ``crisismon run`` (bench/live_latency.py, 1,000 and 5,000 posts/s):

- **One packet per event-loop turn.** aiomqtt calls paho's ``loop_read()`` once each time
  the socket is readable, and paho reads one packet per call unless QoS 1 publishes of
  its own are in flight. A subscriber (PUBLISH packets coming in) got one message per
  turn: with the loop also storing batches and sending alerts, the daemon fell behind
  its input (~800 posts/s stored) and every post waited in the socket for its turn.
  :func:`read_all_packets` reads what the socket holds.
- **Three or four system calls a packet.** paho reads a packet's first byte, then each
  byte of its length, then the rest, each with its own ``recv``: at 5,000 posts/s in and
  ~1,300 PUBACKs back, ~25,000 calls a second. On a plain TCP socket,
  :func:`read_all_packets` reads what the socket holds in one call and cuts the packets
  out of it itself (TLS and websockets keep paho's reads).
- **A system call per packet sent.** paho sends each queued packet with its own
  ``send``: the source's PUBACK for every post and the channel's PUBLISH for every
  alert. :func:`coalesce_writes` sends what is queued in one call.
- **A PUBACK decoded into objects.** paho builds a ``ReasonCode`` and a ``Properties``
  for each PUBACK and logs it; :func:`lean_puback` takes a plain success PUBACK (the
  message id, and nothing or a zero reason code) straight to paho's own bookkeeping.
- **MQTT 5 properties.** Every PUBLISH received (and every one sent with properties)
  builds a ``paho.mqtt.properties.Properties``, whose constructor rebuilds two tables of
  27 entries each time: a quarter of the daemon's CPU at that rate. The tables are
  constants that paho only reads, so :func:`share_property_tables` builds them once.

- **paho's PUBLISH handling.** For each message received paho builds an ``MQTTMessage``
  (whose ``MQTTMessageInfo`` makes a ``threading.Condition``), decodes its MQTT 5
  properties, formats a debug log line and walks its topic matcher, and aiomqtt then
  copies it into a ``Message``: ~15 % of the daemon's CPU at 5,000 posts/s.
  :func:`lean_publish` decodes the packet and queues aiomqtt's ``Message`` directly.

- **A ``threading.Condition`` per publish.** ``MQTTMessageInfo`` (every message sent, and
  every one received through paho's own path) makes one, only for ``wait_for_publish``,
  a blocking call that nothing on the event loop makes: ~4 % of the daemon's CPU at
  1,250 alerts/s on the MQTT channel. :func:`lazy_publish_conditions` makes it on first
  use.

- **A PUBACK packet per post.** The source acknowledges each message once its batch is
  stored; paho's ``ack`` builds, logs and queues a packet each. :func:`ack_all` queues a
  batch's PUBACKs as one packet (the same bytes).

- **A wake-up per segment.** While the source lingers for a batch, every TCP segment the
  broker sent woke the loop for a read of a packet or two. :func:`hold_reads` raises the
  socket's low-water mark for the linger and :func:`release_reads` reads what gathered
  at once.

All but the last reach into paho's private attributes. None is made on import: the two that
change paho's classes are installed by :func:`install_patches` (called once at daemon
start, ``monitor.daemon.run_daemon``), the two per connection by the source or channel
that opens it. Each is made only on a paho release it was tested with
(:data:`TESTED_PAHO`); on any other, and wherever the attributes it needs are missing, it
leaves paho's own code in place and logs a warning: slower, never wrong.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Sequence

import aiomqtt
import structlog
from paho.mqtt import __version__ as paho_version
from paho.mqtt.client import (
    DISCONNECT,
    MQTT_LOG_ERR,
    PUBACK,
    PUBLISH,
    MQTTMessageInfo,
    MQTTv5,
    time_func,
)
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties
from paho.mqtt.reasoncodes import ReasonCode

log = structlog.get_logger(__name__)

TESTED_PAHO = ("2.1.", "2.2.")
"""paho-mqtt releases (version prefixes) these patches were tested with: the unit tests
in tests/unit/test_mqttread.py compare each with paho's own code. Add a release here
after running them on it."""

READ_MAX = 1000
"""Packets read in one turn at most, so one busy connection cannot starve the loop."""
READ_BYTES = 256 * 1024
"""Bytes asked of the socket per ``recv`` (a plain TCP socket, see ``read_all_packets``)."""
WRITE_BYTES = 256 * 1024
"""Bytes of queued packets given to one ``send`` at most (``coalesce_writes``)."""


def plain_socket(sock: object) -> bool:
    """A plain TCP socket (not TLS, not paho's websocket wrapper): what the patches that
    read and write the socket themselves handle; any other keeps paho's own code."""
    return isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket)


_refused: set[str] = set()
"""The patches :func:`paho_tested` has refused and logged."""


def paho_tested(patch: str, version: str | None = None) -> bool:
    """True when paho (``version``, else the installed one) is a release the patches were
    tested with; else log (once per patch) that ``patch`` is left out."""
    version = paho_version if version is None else version
    if version.startswith(TESTED_PAHO):
        return True
    if patch not in _refused:
        _refused.add(patch)
        log.warning("mqtt: paho release not tested with this patch; paho's own code kept",
                    patch=patch, paho=version, tested=", ".join(f"{v}x" for v in TESTED_PAHO))
    return False


def install_patches(version: str | None = None) -> bool:
    """Install the patches to paho's classes (:func:`share_property_tables`,
    :func:`lazy_publish_conditions`) when paho is a tested release; True if it is.
    Idempotent. Called at daemon start, never on import."""
    if not paho_tested("classes", version):
        return False
    share_property_tables()
    lazy_publish_conditions()
    return True


def read_all_packets(client: aiomqtt.Client, most: int = READ_MAX) -> None:
    """Make ``client`` read up to ``most`` packets per readable event (until the socket
    has no complete packet left). Call before connecting."""
    if not paho_tested("read_all_packets"):
        return
    paho = client._client
    if not all(hasattr(paho, name) for name in ("_packet_read", "_loop_rc_handle", "_sock")):
        # A paho whose internals moved: keep its own (slower, correct) loop_read.
        log.warning("mqtt: paho internals changed; reading one packet per turn",
                    paho=paho_version)
        return

    def packet_reads() -> MQTTErrorCode:
        # paho's own loop_read, with a higher bound: _packet_read reads one packet (or
        # part of one) and says MQTT_ERR_AGAIN once the socket has nothing more.
        for _ in range(most):
            if paho._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = paho._packet_read()
            if rc > 0:
                return paho._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    partial = bytearray()
    """Bytes read that do not make a whole packet yet (the rest is still to come, so the
    socket becomes readable again: nothing whole is ever left waiting here)."""
    source: list[object] = [None]  # the socket ``partial`` came from

    def loop_read(max_packets: int = 1) -> MQTTErrorCode:
        sock = paho._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if not plain_socket(sock):  # TLS or websockets: paho's own reads
            return packet_reads()
        if source[0] is not sock:  # a new connection starts with no bytes of the last
            partial.clear()
            source[0] = sock
        handled = 0
        while handled < most:  # level-triggered: what is left makes the next call
            try:
                data = sock.recv(READ_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:
                paho._easy_log(MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                return paho._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
            if not data:
                return paho._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
            partial.extend(data)
            rc, n = handle_packets(paho, partial)
            handled += n
            if rc > 0:
                return paho._loop_rc_handle(rc)
            if len(data) < READ_BYTES:  # the socket had no more just now
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho.loop_read = loop_read  # type: ignore[method-assign]


HOLD_BYTES = 1 << 20
"""``hold_reads``: bytes the socket gathers before it says it is readable (the kernel caps
it at half its receive buffer)."""


def hold_reads(client: aiomqtt.Client) -> bool:
    """Make ``client``'s socket wake the event loop only once much is waiting
    (``SO_RCVLOWAT``), while the caller sleeps on purpose (the source's linger): each
    segment the broker sent woke the loop for a read of a packet or two (~15 us of CPU a
    message at 5,000 posts/s, about what decoding it costs). True if held: the caller
    must ``release_reads`` after its sleep. A TLS or websocket socket is not held."""
    sock = getattr(client._client, "_sock", None)
    if not plain_socket(sock):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, HOLD_BYTES)  # type: ignore[union-attr]
    except (OSError, AttributeError):  # (no SO_RCVLOWAT here, or the socket is gone)
        return False
    return True


def release_reads(client: aiomqtt.Client) -> None:
    """End ``hold_reads``: every byte wakes the loop again, and what gathered meanwhile is
    read now (paho's ``loop_read``: ``read_all_packets``'), so it is in the message queue
    when the caller looks."""
    paho = client._client
    sock = getattr(paho, "_sock", None)
    if not plain_socket(sock):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)  # type: ignore[union-attr]
    except OSError:  # closed meanwhile: paho's own read reports the loss
        return
    paho.loop_read()


def ack_all(client: aiomqtt.Client, mids: Sequence[int]) -> None:
    """PUBACK the QoS 1 messages ``mids`` (received with manual acks) with one queued
    packet holding every PUBACK back to back, where paho's ``ack`` builds, logs and
    queues one packet each (~1.5 % of the daemon's CPU at 5,000 posts/s). The bytes on
    the wire are the same (MQTT 5.0 section 3.4: a PUBACK with no reason code is a
    success). On a paho release not tested, or without the internals needed: ``ack``
    each."""
    if not mids:
        return
    paho = client._client
    if not paho_tested("ack_all") or not all(
            hasattr(paho, name) for name in ("_packet_queue", "_manual_ack")) \
            or not paho._manual_ack:
        for mid in mids:
            paho.ack(mid, 1)
        return
    packet = b"".join([_PUBACK_HEAD + mid.to_bytes(2, "big") for mid in mids])
    paho._packet_queue(PUBACK, packet, 0, 1)


_PUBACK_HEAD = bytes([PUBACK, 2])


def _fresh_packet() -> dict[str, object]:
    """paho's ``_in_packet`` between packets (as ``_packet_read`` leaves it)."""
    return {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}


def handle_packets(paho: object, buf: bytearray) -> tuple[MQTTErrorCode, int]:
    """Hand every whole packet at the start of ``buf`` to paho's ``_packet_handle``, as
    its ``_packet_read`` does once it has read one, and cut them off ``buf``. Returns
    (the first error code, else success; how many packets were handled)."""
    pos, end, n = 0, len(buf), 0
    rc = MQTTErrorCode.MQTT_ERR_SUCCESS
    take = getattr(paho, "_crisismon_take_publish", None)  # (``lean_publish``)
    while end - pos >= 2:
        # Fixed header: the command byte, then the remaining length (1-4 bytes, 7 bits
        # each, low first; MQTT 5.0 section 1.5.5).
        i, length, mult, header = pos + 1, 0, 1, False
        while i < end:
            byte = buf[i]
            i += 1
            length += (byte & 0x7F) * mult
            mult *= 128
            if not byte & 0x80:
                header = True
                break
            if i - pos > 4:  # a fifth length byte: paho calls it a protocol error
                rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
                break
        if rc > 0 or not header or i + length > end:
            break  # an error, or the packet is not whole yet
        command = buf[pos]
        if take is not None and command & 0xF0 == PUBLISH:
            packet = buf[i:i + length]
            try:
                taken = take(command, packet)
            except MQTTException:  # (as below)
                taken = MQTTErrorCode.MQTT_ERR_PROTOCOL
            if taken is not None:
                pos = i + length
                n += 1
                rc = taken
                if rc > 0:
                    break
                continue
        paho._in_packet = {  # type: ignore[attr-defined]
            "command": buf[pos], "have_remaining": 1, "remaining_count": list(buf[pos + 1:i]),
            "remaining_mult": mult, "remaining_length": length,
            "packet": buf[i:i + length], "to_process": 0, "pos": 0}
        pos = i + length
        n += 1
        try:
            rc = paho._packet_handle()  # type: ignore[attr-defined]
        except MQTTException:  # paho's MalformedPacket
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        if rc > 0:
            break
    del buf[:pos]
    paho._in_packet = _fresh_packet()  # type: ignore[attr-defined]
    if n:
        with paho._msgtime_mutex:  # type: ignore[attr-defined]
            paho._last_bytes_received = time_func()  # type: ignore[attr-defined]
    return rc, n


def coalesce_writes(client: aiomqtt.Client) -> None:
    """Make ``client`` send the packets it has queued with one ``send`` (up to
    ``WRITE_BYTES``) instead of one each, on a plain TCP socket. A QoS 0 PUBLISH or a
    DISCONNECT at the head of the queue (paho does more once those are written) and
    any other socket take paho's own ``_packet_write``. Call before connecting."""
    if not paho_tested("coalesce_writes"):
        return
    paho = client._client
    names = ("_packet_write", "_out_packet", "_sock", "_msgtime_mutex", "_easy_log")
    if not all(hasattr(paho, name) for name in names):
        log.warning("mqtt: paho internals changed; a send per packet", paho=paho_version)
        return
    original = paho._packet_write

    def packet_write() -> MQTTErrorCode:
        out, sock = paho._out_packet, paho._sock
        if not plain_socket(sock):
            return original()
        sent = False
        while out:
            run, size = [], 0
            for packet in out:
                kind = packet["command"] & 0xF0
                if kind == DISCONNECT or (kind == PUBLISH and not packet["qos"]):
                    break
                run.append(packet)
                size += packet["to_process"]
                if size >= WRITE_BYTES:
                    break
            if not run:
                return original()  # paho's own handling of what needs more than a send
            data = b"".join(bytes(p["packet"][p["pos"]:]) if p["pos"] else p["packet"]
                            for p in run)
            try:
                written = sock.send(data)  # type: ignore[union-attr]
            except (AttributeError, ValueError):  # (paho's answers to a closed socket)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as err:
                paho._easy_log(MQTT_LOG_ERR, "failed to send on socket: %s", err)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if written <= 0:
                break
            sent = True
            for packet in run:  # what went out leaves the queue; a cut packet stays first
                left = packet["to_process"]
                if written >= left:
                    out.popleft()
                    packet["pos"] += left
                    packet["to_process"] = 0
                    written -= left
                else:
                    packet["pos"] += written
                    packet["to_process"] -= written
                    break
        if sent:
            with paho._msgtime_mutex:
                paho._last_msg_out = time_func()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho._packet_write = packet_write  # type: ignore[method-assign]


_SUCCESS = ReasonCode(PacketTypes.PUBACK, "Success")
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)


def lean_puback(client: aiomqtt.Client) -> None:
    """Make ``client`` take a plain success PUBACK (message id; then nothing, or a zero
    reason code with no properties) to paho's own bookkeeping (``_do_on_publish``) with
    one shared success code: no ``ReasonCode``, ``Properties`` or log line a PUBACK. Any
    other PUBACK or PUBCOMP takes paho's path. Call before connecting."""
    if not paho_tested("lean_puback"):
        return
    paho = client._client
    names = ("_handle_pubackcomp", "_in_packet", "_out_message_mutex", "_out_messages",
             "_do_on_publish")
    if not all(hasattr(paho, name) for name in names):
        log.warning("mqtt: paho internals changed; paho's own PUBACK handling",
                    paho=paho_version)
        return
    original = paho._handle_pubackcomp

    def handle_pubackcomp(cmd: str) -> MQTTErrorCode:
        packet = paho._in_packet["packet"]
        size = len(packet)
        # After the id: a reason code of 0 (success) and an empty property length, each
        # left out when the rest is (MQTT 5.0 section 3.4.2.1); MQTT 3.1.1: the id alone.
        if cmd != "PUBACK" or not 2 <= size <= (4 if paho._protocol == MQTTv5 else 2) \
                or any(packet[2:]):
            return original(cmd)  # type: ignore[arg-type]
        mid = (packet[0] << 8) | packet[1]
        with paho._out_message_mutex:
            if mid in paho._out_messages:
                return paho._do_on_publish(mid, _SUCCESS, _NO_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho._handle_pubackcomp = handle_pubackcomp  # type: ignore[method-assign]


def lean_publish(client: aiomqtt.Client) -> None:
    """Make ``client`` hand each QoS 0/1 PUBLISH it receives straight to its message
    queue: the same ``aiomqtt.Message`` (topic, payload, qos, retain, mid; its MQTT 5
    properties are skipped, as the sources never read them), none of paho's per-message
    objects. QoS 2, filtered callbacks, bad topics and malformed packets take paho's own
    path (which reports them as it always did). Call before connecting."""
    if not paho_tested("lean_publish"):
        return
    paho = client._client
    names = ("_handle_publish", "_in_packet", "_protocol", "_on_message_filtered",
             "_manual_ack", "_send_puback")
    if not all(hasattr(paho, name) for name in names) or not hasattr(client, "_queue") \
            or not hasattr(getattr(paho._on_message_filtered, "_root", None), "_children"):
        log.warning("mqtt: paho internals changed; paho's own PUBLISH handling",
                    paho=paho_version)
        return
    original = paho._handle_publish
    queue = client._queue
    topics: dict[bytes, aiomqtt.Topic] = {}  # a source has a few topics: one Topic each

    def take(header: int, packet: bytearray) -> MQTTErrorCode | None:
        """Queue the PUBLISH ``packet`` (its fixed header ``header``); None: left to
        paho (``original``, which reads it from ``_in_packet``)."""
        qos = (header & 0x06) >> 1
        if qos == 2 or paho._on_message_filtered._root._children:
            return None
        try:
            end = 2 + int.from_bytes(packet[0:2], "big")
            raw_topic = bytes(packet[2:end])
            topic = topics.get(raw_topic)
            if topic is None:
                topic = aiomqtt.Topic(raw_topic.decode("utf-8"))
                if len(topics) < 64:
                    topics[raw_topic] = topic
            mid = 0
            if qos:
                mid = int.from_bytes(packet[end:end + 2], "big")
                end += 2
            if paho._protocol == MQTTv5:  # skip the properties: a varint length, then them
                length, shift = 0, 0
                while True:
                    byte = packet[end]
                    end += 1
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                    if shift > 21:
                        raise ValueError("properties length too long")
                end += length
            if end > len(packet):
                raise ValueError("truncated PUBLISH")
        except (IndexError, ValueError, TypeError):  # (UnicodeDecodeError is a ValueError)
            return None
        message = aiomqtt.Message(topic, bytes(packet[end:]), qos, bool(header & 0x01), mid,
                                  None)
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("mqtt: message queue is full; message discarded")
        if qos == 1 and not paho._manual_ack:
            return paho._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def handle_publish() -> MQTTErrorCode:
        rc = take(paho._in_packet["command"], paho._in_packet["packet"])
        return original() if rc is None else rc

    paho._handle_publish = handle_publish  # type: ignore[method-assign]
    # ``handle_packets`` hands a PUBLISH straight to ``take``, without building paho's
    # ``_in_packet`` and going through its dispatch (it does so for what ``take`` leaves).
    paho._crisismon_take_publish = take  # type: ignore[attr-defined]


def lazy_publish_conditions() -> None:
    """Make each ``MQTTMessageInfo`` create its ``threading.Condition`` only when a thread
    is about to wait on it (``wait_for_publish``, ``is_published``). Marking a message
    published with no condition made yet just sets the flag: a waiter makes the
    condition first, under the same lock, and then sees the flag. Idempotent; see
    :func:`install_patches`."""
    cls = MQTTMessageInfo
    if getattr(cls, "_crisismon_lazy", False):
        return
    slot = cls.__dict__.get("_condition")
    if slot is None or not hasattr(slot, "__set__") or not all(
            callable(getattr(cls, name, None))
            for name in ("_set_as_published", "wait_for_publish", "is_published")):
        log.warning("mqtt: paho internals changed; a condition per publish",
                    paho=paho_version)
        return
    guard = threading.Lock()

    def condition(self: MQTTMessageInfo) -> threading.Condition:
        with guard:
            try:
                return slot.__get__(self, cls)  # type: ignore[no-any-return]
            except AttributeError:
                made = threading.Condition()
                slot.__set__(self, made)
                return made

    def set_condition(self: MQTTMessageInfo, value: threading.Condition) -> None:
        slot.__set__(self, value)

    def __init__(self: MQTTMessageInfo, mid: int) -> None:
        self.mid = mid
        self._published = False
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self: MQTTMessageInfo) -> None:
        with guard:
            try:
                made = slot.__get__(self, cls)
            except AttributeError:  # nobody waits (a waiter would have made it)
                self._published = True
                return
        with made:
            self._published = True
            made.notify()

    cls._condition = property(condition, set_condition)  # type: ignore[assignment, misc]
    cls.__init__ = __init__  # type: ignore[method-assign]
    cls._set_as_published = _set_as_published  # type: ignore[method-assign]
    cls._crisismon_lazy = True  # type: ignore[attr-defined]


_original_init = Properties.__init__


def share_property_tables() -> None:
    """Make ``Properties(packet_type)`` reuse one copy of paho's constant tables
    (``types``, ``names``, ``properties``: read, never written, by paho). Idempotent;
    see :func:`install_patches`."""
    if Properties.__init__ is not _original_init:
        return
    template = Properties(PacketTypes.PUBLISH)
    try:
        types, names, table = template.types, template.names, template.properties
    except AttributeError:  # a paho that keeps them elsewhere: leave its constructor be
        log.warning("mqtt: paho internals changed; property tables not shared",
                    paho=paho_version)
        return

    def __init__(self: Properties, packetType: int) -> None:
        setattr_ = object.__setattr__  # the names paho's __setattr__ passes straight on
        setattr_(self, "packetType", packetType)
        setattr_(self, "types", types)
        setattr_(self, "names", names)
        setattr_(self, "properties", table)

    Properties.__init__ = __init__  # type: ignore[method-assign]

