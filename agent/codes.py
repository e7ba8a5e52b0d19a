# Codes as data: the GBCS Dual Band CHF alert codes, and lookups of the DUIS response codes and
# DCC alert codes, whose tables (and this project's reading of E062801/E062802/E062803) are in
# agent/dcc_tables.py, loaded only when asked so a board does not carry them at boot.
# Sources: DOMAIN.md section 4 (GBCS 0x8F20-0x8F2D) and Table 42's rule for N54.

SUCCESS = "I0"
ACKNOWLEDGED = "I99"


def is_success(code):
    return code[0] == "I"


def response_name(code):
    from agent.dcc_tables import RESPONSE_CODES

    entry = RESPONSE_CODES.get(code)
    return entry[0] if entry else None


# -- GBCS Dual Band CHF alerts (0x8F20-0x8F2D) ---------------------------------------------------
# code: (name, N54 response code, payload kind). The response codes are Table 42's rule for N54.
# Payload kinds: None, "eui" (device EUI-64), "channel" (operating mask + scan trigger),
# "scan_outcome" (status + scan trigger), "config" (the full Sub GHz configuration),
# "request" (RequestID + CRA flag), "eui_type" (EUI + device type).
GBCS_ALERTS = {
    0x8F20: ("Limited Duty Cycle Action Taken", "E59", "eui"),
    0x8F21: ("Duty Cycle fallen below Normal-Limited Duty Cycle Threshold", "I0", None),
    0x8F22: ("Critical Duty Cycle Action Taken", "E59", None),
    0x8F23: ("Duty Cycle fallen below Limited-Critical Duty Cycle Threshold", "I0", None),
    0x8F24: ("Regulated Duty Cycle Action Taken", "E59", None),
    0x8F25: ("Duty Cycle fallen below Critical-Regulated Duty Cycle Threshold", "I0", None),
    0x8F26: ("Sub GHz Channel Changed", "I0", "channel"),
    0x8F27: ("Sub GHz Channel Scan initiated", "I0", None),
    0x8F28: ("Sub GHz Channel Scan Request Assessment Outcome", "I0", "scan_outcome"),
    0x8F29: ("Three Lost GSME Searches Failed", "E59", None),
    0x8F2A: ("Sub GHz Configuration Changed", "I0", "config"),
    0x8F2B: ("Sub GHz Channel not changed due to Frequency Agility Parameters", "E59", None),
    0x8F2C: ("Message Discarded Due to Duty Cycle Management", "E59", "request"),
    0x8F2D: ("No More Sub GHz Device Capacity", "E59", "eui_type"),
}

ALERT_LIMITED_ACTION = 0x8F20
ALERT_BELOW_NORMAL_LIMITED = 0x8F21
ALERT_CRITICAL_ACTION = 0x8F22
ALERT_BELOW_LIMITED_CRITICAL = 0x8F23
ALERT_REGULATED_ACTION = 0x8F24
ALERT_BELOW_CRITICAL_REGULATED = 0x8F25
ALERT_CHANNEL_CHANGED = 0x8F26
ALERT_SCAN_INITIATED = 0x8F27
ALERT_SCAN_OUTCOME = 0x8F28
ALERT_LOST_GSME_SEARCHES = 0x8F29
ALERT_CONFIG_CHANGED = 0x8F2A
ALERT_CHANNEL_NOT_CHANGED = 0x8F2B
ALERT_MESSAGE_DISCARDED = 0x8F2C
ALERT_NO_CAPACITY = 0x8F2D


def gbcs_alert_hex(code):
    """0x8F20 -> '8F20' (sr:DeviceAlertCode is hexBinary of two octets)."""
    return "{:04X}".format(code)


def allowed_response(dcc_alert, gbcs_alert=None):
    """The response codes a DCC alert may carry; for N54 the one its GBCS alert code allows.
    None where the seeds do not say."""
    if dcc_alert == "N54":
        if gbcs_alert is None:
            raise ValueError("N54 needs its GBCS alert code")
        entry = GBCS_ALERTS.get(gbcs_alert)
        if entry is None:
            raise ValueError("not a Dual Band CH alert code: 0x{:04X}".format(gbcs_alert))
        return (entry[1],)
    from agent.dcc_tables import DCC_ALERTS

    entry = DCC_ALERTS.get(dcc_alert)
    if entry is None:
        raise ValueError("unknown DCC alert code: {}".format(dcc_alert))
    return entry[1]
