# Upward events as the outbox stores them and the host renders them (DUIS DCCAlertMessage).
# An event is (kind, data); kinds are DCC alert codes ("N54", "N64") or the agent's own
# ("incident", "overflow", "restore"). Field names follow the DUIS 5.4 elements the host writes.
from agent import codes
from agent.eui import format_eui

N54 = "N54"
N64 = "N64"


def n54(eui, code, payload=None):
    """DCC Alert N54 (sr:DualBandCHAlert) for one GBCS Dual Band CH alert."""
    rc = codes.gbcs_alert_rc(code)  # ValueError if not a Dual Band CH alert code
    if code == codes.ALERT_LIMITED_ACTION and payload is not None:
        # the duty-cycle manager names the suspended device by its EUI bytes, or None when only
        # the hub's own traffic is in the window (then there is no device to name)
        suspended = payload.get("eui")
        payload = {"DeviceIDToSuspend": format_eui(suspended)} if suspended else None
    data = {
        "CHFDeviceID": format_eui(eui),
        "DeviceAlertCode": "{:04X}".format(code),  # hexBinary of two octets
        "rc": rc,
    }
    if payload is not None:
        data["payload"] = payload
    return N54, data


def n64(eui, version):
    """DCC Alert N64 (sr:CommsHubFirmwareActivation): DeviceID and FirmwareVersion."""
    if not isinstance(version, str) or not 1 <= len(version) <= 8:
        raise ValueError("FirmwareVersion is 1 to 8 characters, got {!r}".format(version))
    # Table 42 allows N64 only I0 (dcc_tables.DCC_ALERTS, not loaded here; tests check they agree)
    return N64, {"DeviceID": format_eui(eui), "FirmwareVersion": version, "rc": codes.SUCCESS}


RESTORE = "restore"


def restore(eui, why):
    # The agent's own event "restore": the Sub GHz Configuration stored on the hub could not be
    # restored at boot, so the hub runs unconfigured (no operating channel) until the DCC sets
    # one again (SRV 6.28). No GBCS Dual Band CH alert (0x8F20-0x8F2D) says this, and the DCC's
    # Comms Hub Alert (N62) has no response code this project can cite, so it goes up as an
    # agent event, like "incident": the host shows it and may raise it with the DCC.
    return {"DeviceID": format_eui(eui), "item": "SubGHzConfiguration", "why": why}
