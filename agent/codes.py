# The codes a board needs at boot: the response codes it writes, the GBCS Dual Band CHF alert
# codes 0x8F20-0x8F2D it raises, and the response code an N54 carrying each of them has.
# Everything else - the alert names and payload kinds (GBCS_ALERTS), the DUIS response code and
# DCC alert tables and their lookups (response_name, allowed_response, ...) - is in
# agent/dcc_tables.py, which a board loads only when asked and the host tools use freely.
# Sources: DOMAIN.md section 4 (GBCS 0x8F20-0x8F2D) and Table 42's rule for N54.
from hal.compat import const

SUCCESS = "I0"

# -- GBCS Dual Band CHF alerts (0x8F20-0x8F2D); names in dcc_tables.GBCS_ALERTS ------------------
ALERT_LIMITED_ACTION = const(0x8F20)
ALERT_BELOW_NORMAL_LIMITED = const(0x8F21)
ALERT_CRITICAL_ACTION = const(0x8F22)
ALERT_BELOW_LIMITED_CRITICAL = const(0x8F23)
ALERT_REGULATED_ACTION = const(0x8F24)
ALERT_BELOW_CRITICAL_REGULATED = const(0x8F25)
ALERT_CHANNEL_CHANGED = const(0x8F26)
ALERT_SCAN_INITIATED = const(0x8F27)
ALERT_SCAN_OUTCOME = const(0x8F28)
ALERT_LOST_GSME_SEARCHES = const(0x8F29)
ALERT_CONFIG_CHANGED = const(0x8F2A)
ALERT_CHANNEL_NOT_CHANGED = const(0x8F2B)
ALERT_MESSAGE_DISCARDED = const(0x8F2C)
ALERT_NO_CAPACITY = const(0x8F2D)

# Table 42's rule for N54: the alerts below carry E59, the others I0. One bit per code, bit n for
# 0x8F20 + n (the same column as dcc_tables.GBCS_ALERTS; tests check that they agree).
_E59 = const(
    1 << (ALERT_LIMITED_ACTION - 0x8F20)
    | 1 << (ALERT_CRITICAL_ACTION - 0x8F20)
    | 1 << (ALERT_REGULATED_ACTION - 0x8F20)
    | 1 << (ALERT_LOST_GSME_SEARCHES - 0x8F20)
    | 1 << (ALERT_CHANNEL_NOT_CHANGED - 0x8F20)
    | 1 << (ALERT_MESSAGE_DISCARDED - 0x8F20)
    | 1 << (ALERT_NO_CAPACITY - 0x8F20)
)


def gbcs_alert_rc(code):
    # The response code ("I0" or "E59") of an N54 carrying GBCS alert `code`; ValueError if it
    # is not a Dual Band CH alert code.
    if not ALERT_LIMITED_ACTION <= code <= ALERT_NO_CAPACITY:
        raise ValueError("not a Dual Band CH alert code: 0x{:04X}".format(code))
    return "E59" if _E59 >> (code - ALERT_LIMITED_ACTION) & 1 else SUCCESS
