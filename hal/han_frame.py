# The frame format of the HAN on the sub-GHz medium: what the hub's agent (agent/han.py) and the
# simulated devices (hal/sim/han.py) exchange. It is this project's own, much simpler than
# Zigbee's MAC/NWK/APS/ZCL layers, but it carries what those layers carry for duty-cycle
# management (DOMAIN.md section 9):
#
#   byte 0      0x48, the format's mark (frames without it are not the HAN's: ignored)
#   byte 1      kind (below)
#   byte 2      sequence number of the sender (0-255)
#   bytes 3-10  source EUI-64
#   bytes 11-18 destination EUI-64 (BROADCAST: every device)
#   bytes 19-   payload, by kind:
#     BEACON_REQ  -                      a device looking for the network, on one channel
#     BEACON      -                      the hub's answer: the network is on this channel
#     JOIN_REQ    device type (1), wake period in seconds (2; 0: always listening)
#                                        a device asks to join
#     JOIN_RSP    status (1)             JOINED, or NO_CAPACITY (the hub's table is full)
#     DATA        flags (1), body        readings up, commands, tariff pushes and firmware blocks
#                                        down; flags: ESSENTIAL, REQUEST (answered with DATA),
#                                        ACK_ME (answered with ACK)
#     ACK         sequence number (1)    the DATA of that sequence number arrived
#     POLL        -                      a sleepy device awake: what is pending for it now
#     SUSPEND     minutes (2)            Sub-GHz cluster SuspendZCLMessages (0: resume)
#     SUSPEND_Q   -                      Sub-GHz cluster GetSuspendZCLMessagesStatus (answered
#                                        with SUSPEND: the minutes left)
#     STATS       page, channel (1 each), unicast total, failures, retries, period in minutes
#                 (2 each): Mgmt_NWK_Unsolicited_Enhanced_Update_notify's MAC statistics
#     LEAVE       -                      the device leaves the network
#     ATTR        attribute (1), value (4)   the hub's Sub-GHz cluster attribute or functional
#                                        notification flag, given to a sleepy device when it
#                                        polls: ATTR_SCAN_PENDING, ATTR_CHANGE_PENDING (value 0/1),
#                                        ATTR_CHANNEL_CHANGE (the next channel's 32-bit page mask)
# Multi-byte numbers are big-endian.
from hal.compat import const

MARK = const(0x48)
HEADER = const(19)
BROADCAST = b"\xff" * 8

BEACON_REQ = const(1)
BEACON = const(2)
JOIN_REQ = const(3)
JOIN_RSP = const(4)
DATA = const(5)
ACK = const(6)
POLL = const(7)
SUSPEND = const(8)
SUSPEND_Q = const(9)
STATS = const(10)
LEAVE = const(11)
ATTR = const(12)
_LAST = const(12)

ATTR_SCAN_PENDING = const(1)
ATTR_CHANGE_PENDING = const(2)
ATTR_CHANNEL_CHANGE = const(3)
ATTR_NAMES = ("", "EnergyScanPending", "ChannelChangePending", "ChannelChange")

JOINED = const(0)
NO_CAPACITY = const(1)

ESSENTIAL = const(1)
REQUEST = const(2)
ACK_ME = const(4)

# Device types by code (JOIN_REQ's byte), as DUIS names them (sr:DeviceType); CAD is the type 2
# device of a GB HAN (a consumer access device).
TYPES = ("", "ESME", "GSME", "PPMID", "IHD", "CAD")


def type_code(name):
    """'GSME' -> 2; ValueError for a type that is not a HAN device's."""
    if name in TYPES and name:
        return TYPES.index(name)
    raise ValueError("device type {!r}: one of {}".format(name, ", ".join(TYPES[1:])))


def encode(kind, seq, src, dst, payload=b""):
    head = bytearray(HEADER)
    head[0] = MARK
    head[1] = kind
    head[2] = seq & 0xFF
    head[3:11] = src
    head[11:19] = dst
    return bytes(head) + payload


def decode(frame):
    """(kind, seq, src, dst, payload) of a HAN frame, or None if frame is not one."""
    if len(frame) < HEADER or frame[0] != MARK or not 0 < frame[1] <= _LAST:
        return None
    return frame[1], frame[2], bytes(frame[3:11]), bytes(frame[11:19]), bytes(frame[HEADER:])


def u16(n):
    return bytes(((n >> 8) & 0xFF, n & 0xFF))


def get_u16(b, i):
    return (b[i] << 8) | b[i + 1]


def u32(n):
    return u16(n >> 16) + u16(n & 0xFFFF)


def get_u32(b, i):
    return (get_u16(b, i) << 16) | get_u16(b, i + 2)


def stats(page, channel, total, failures, retries, minutes):
    return bytes((page, channel)) + u16(total) + u16(failures) + u16(retries) + u16(minutes)


def parse_stats(p):
    """STATS payload -> (page, channel, total, failures, retries, minutes); ValueError if short."""
    if len(p) < 10:
        raise ValueError("a STATS payload is 10 bytes")
    return p[0], p[1], get_u16(p, 2), get_u16(p, 4), get_u16(p, 6), get_u16(p, 8)
