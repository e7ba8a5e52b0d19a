# One simulated HAN device (hal/sim/han.py moves it): its identity, where it is with the network,
# its scripted behaviour, its suspension and its MAC statistics of the period.
from hal import han_frame as hf
from hal import phy

STATS_MS = 3600000  # MAC statistics every hour
# the time between messages by type (ms); a GSME's is its wake period
PERIODS = {"ESME": 600000, "GSME": 300000, "PPMID": 120000, "IHD": 60000, "CAD": 300000}


class Device:
    def __init__(self, eui, kind, period_ms, now):
        self.eui = eui
        self.type = kind
        self.period_ms = period_ms  # GSME: the wake period
        self.channel = None  # (page, channel) of the network once found
        self.joined = False
        self.refused = 0  # NO_CAPACITY answers received
        self.behaviour = "normal"
        self.burst = 10
        self.loss = 0  # percent of frames lost on the air
        self.next_ms = now
        self.stats_ms = now + STATS_MS
        self.suspended_until = 0  # ms; 0: not suspended
        self.asked = 0  # GetSuspendZCLMessagesStatus sent
        self.held = 0  # non-essential messages not sent while suspended
        self.seq = 0
        self.total = self.failures = self.retries = 0  # this stats period
        self.fails_in_row = 0
        self.sent = 0  # frames put on air, all kinds
        self.airtime_us = 0
        self.got = {}  # kind -> frames received from the hub
        self.reports = 0  # STATS sent
        self.awake = False
        self.attrs = {}  # the hub's attributes and flags last read (sleepy device): id -> value
        self.move_to = None  # the channel the hub announced it moves to (ChannelChange)

    @property
    def sleepy(self):
        return self.type == "GSME"

    def state(self, now):
        return {
            "eui": self.eui,
            "type": self.type,
            "joined": self.joined,
            "channel": list(self.channel) if self.channel else None,
            "behaviour": self.behaviour,
            "suspended_s": max(0, self.suspended_until - now) // 1000 if self.suspended_until else 0,
            "held": self.held,
            "asked_status": self.asked,
            "refused": self.refused,
            "sent": self.sent,
            "airtime_us": self.airtime_us,
            "mac": [self.total, self.failures, self.retries],
            "reports": self.reports,
            "attrs": [[hf.ATTR_NAMES[k], v] for k, v in self.attrs.items() if 0 < k < len(hf.ATTR_NAMES)],
        }


def channel_of(mask):
    # a 32-bit page mask naming one channel (channels.encode_mask's form) -> (page, channel)
    page = mask >> 27
    first = phy.PLAN[page][0] if page in phy.PLAN else 0
    for bit in range(27):
        if mask >> bit & 1:
            return page, first + bit
    return None
