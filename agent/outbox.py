# The persistent outbox of upward events (alerts).
#
# append() stores an event before it returns its sequence number; the event stays until ack()
# removes it, across reboots and link loss. Delivery (whichever link is up) reads pending().
#
# Layout on the Storage (through agent.store, so every record is CRC-checked CBOR):
#   "<prefix>.<seq>"  one record per event: {"s": seq, "k": kind, "d": data}; with a clock, a
#                     map data carries "utc": the device's UTC seconds when the event was raised
#                     (the host dates the alert by it, not by when it arrives)
#   "<prefix>.o"      the overflow event, if any: {"s": seq, "dropped": n, "first_seq": a,
#                     "last_seq": b}
#   "<prefix>.m"      meta: {"next": seq} - written only when an ack is about to remove the
#                     record holding the highest seq issued so far
# Only the names are read at start-up (the seqs of the events are kept in RAM, not the bodies).
#
# Sequence numbers start at 1, strictly increase and are never reused, across reboots and power
# cuts: the highest seq issued is always on the flash, in its event record, in the overflow
# record or in meta, and start-up continues after the highest of them. Every step is one atomic
# Storage write or remove, so a power cut at any point leaves each event whole or absent: an
# append that returned is on the flash; an ack that was cut may leave the event pending (it is
# delivered again: delivery is at least once, the host ignores a seq it already has).
#
# Overflow policy (never silent): the outbox holds at most `capacity` events plus one reserved
# overflow event. When it is full, append() keeps the oldest events and refuses the new one:
# the refused event takes the next seq (so the host sees the gap), is not stored, and is counted
# in the overflow event, which is delivered like any other event, in seq order:
#   kind "overflow", data {"dropped": n, "first_seq": a, "last_seq": b}
# n events were refused (or found damaged) since the overflow event was last acknowledged; their
# seqs lie in a..b. Each update gives the overflow event a fresh seq (the refused event's seq),
# so it is cumulative and supersedes the earlier version; acking an older version is a no-op
# (returns False) and the newest version stays until acked, so no count is lost. append()
# returns None for a refused event. An event record found damaged (CRC) by pending() is removed
# and counted the same way (and in `damaged`).
from agent.store import Store, encode
from hal.compat import const

_DEFAULT_CAPACITY = const(64)


class Outbox:
    def __init__(self, storage, capacity=_DEFAULT_CAPACITY, prefix="ob", utc=None):
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError("outbox capacity must be a positive int, not {!r}".format(capacity))
        self.store = storage if isinstance(storage, Store) else Store(storage)
        self.capacity = capacity
        self._utc = utc  # the clock's utc(): the time each event is raised at, or None
        self._p = prefix + "."
        self._meta = prefix + ".m"
        self._ovf = prefix + ".o"
        self.refused = 0  # refused by this instance (the overflow event has the total)
        self.damaged = 0  # damaged event records met by this instance
        seqs = []
        cut = len(self._p)
        for name in self.store.names(self._p):
            tail = name[cut:]
            if tail.isdigit():
                seqs.append(int(tail))
        seqs.sort()
        self._seqs = seqs
        meta = self.store.get(self._meta)
        nxt = meta.get("next") if isinstance(meta, dict) else None
        self._meta_next = nxt if isinstance(nxt, int) else 0
        o = self.store.get(self._ovf)
        for key in ("s", "dropped", "first_seq", "last_seq"):
            if not isinstance(o, dict) or not isinstance(o.get(key), int):
                o = None  # none, or damaged: the next lost event starts a new one
                break
        self._o = o
        top = max(seqs[-1] if seqs else 0, self._o["s"] if self._o else 0, self._meta_next - 1)
        self._next = top + 1

    def _name(self, seq):
        return self._p + str(seq)

    def __len__(self):
        return len(self._seqs) + (1 if self._o else 0)

    @property
    def next_seq(self):
        return self._next

    @property
    def overflow(self):
        """The overflow event's data, or None."""
        o = self._o
        if o is None:
            return None
        return {"dropped": o["dropped"], "first_seq": o["first_seq"], "last_seq": o["last_seq"]}

    def append(self, kind, data=None):
        """Store an event; its seq, or None if the outbox is full (then it is counted). With a
        clock, a map event is dated in place ("utc")."""
        if not isinstance(kind, str) or not kind:
            raise ValueError("event kind must be a non-empty str, not {!r}".format(kind))
        if kind == "overflow":
            raise ValueError("event kind 'overflow' is reserved")
        seq = self._next
        if self._utc is not None and isinstance(data, dict) and "utc" not in data:
            data["utc"] = self._utc()  # in place: a copy of a large event (8F2A) costs heap
        body = encode({"s": seq, "k": kind, "d": data})  # an unencodable event fails here, seq unused
        if len(self._seqs) >= self.capacity:
            self.refused += 1
            self._count_lost(seq)
            return None
        self.store.storage.write(self._name(seq), body)
        self._next = seq + 1
        self._seqs.append(seq)
        return seq

    def _count_lost(self, lost):
        # Fold one lost event (refused, or damaged) into the overflow event, under a fresh seq.
        seq = self._next
        o = self._o
        if o is None:
            o = {"s": seq, "dropped": 1, "first_seq": lost, "last_seq": lost}
        else:
            o = {
                "s": seq,
                "dropped": o["dropped"] + 1,
                "first_seq": min(o["first_seq"], lost),
                "last_seq": max(o["last_seq"], lost),
            }
        self.store.put(self._ovf, o)
        self._o = o
        self._next = seq + 1

    def pending(self, limit=None):
        """Up to limit events, oldest first, as (seq, kind, data)."""
        out = []
        o = self._o
        at = None  # where the overflow event went in out
        for seq in list(self._seqs):
            if limit is not None and len(out) >= limit:
                return out
            if o is not None and o["s"] < seq:
                at = len(out)
                out.append((o["s"], "overflow", self.overflow))
                o = None
                if limit is not None and len(out) >= limit:
                    return out
            rec = self.store.get(self._name(seq))
            if not isinstance(rec, dict) or rec.get("s") != seq or not isinstance(rec.get("k"), str):
                # damaged: counted as lost, and removed
                self.damaged += 1
                self._count_lost(seq)
                self._remove(self._name(seq), seq)
                self._seqs.remove(seq)
                if at is not None:  # superseded by the new version, which comes last
                    out.pop(at)
                    at = None
                o = self._o
                continue
            out.append((seq, rec["k"], rec.get("d")))
        if o is not None and (limit is None or len(out) < limit):
            out.append((o["s"], "overflow", self.overflow))
        return out

    def _remove(self, name, seq):
        # Removing the record of the highest seq issued: keep that seq on the flash in meta first.
        if seq == self._next - 1 and self._meta_next < self._next:
            self.store.put(self._meta, {"next": self._next})
            self._meta_next = self._next
        self.store.delete(name)

    def ack(self, seq):
        """Remove an acknowledged event; False if there is no pending event with that seq."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            return False
        if seq in self._seqs:
            self._remove(self._name(seq), seq)
            self._seqs.remove(seq)
            return True
        o = self._o
        if o is not None and o["s"] == seq:
            self._remove(self._ovf, seq)
            self._o = None
            return True
        return False
