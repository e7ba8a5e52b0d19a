"""The Communications Hub part of a SEC Section H17 report (H17.5: "Communications Hub make, model
and firmware version", for each Smart Meter a Manufacturer or Meter Asset Provider asks about),
for the hubs a manufacturer sees on its broker: device ID, make, model, firmware version, as CSV
or JSON. Each row also says where the figures come from: the hub's availability, its gateway and
when its state was read."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

from host_tools.fleet.view import Hub

# make and model of each board the agent runs on (its NAME in the hub's status)
BOARDS = {
    "heltec_wifi_lora32_v3": ("Heltec Automation", "WiFi LoRa 32 (V3)"),
    "nucleo_wl55jc": ("STMicroelectronics", "NUCLEO-WL55JC"),
    "pico_rfm69": ("Raspberry Pi / HopeRF", "Pico with RFM69HCW"),
    "unix": ("dbch", "virtual board (MicroPython unix port)"),
    "sim": ("dbch", "simulated hub (CPython)"),
}
COLUMNS = ("device_id", "make", "model", "firmware_version", "availability", "gateway", "read_at")


def rows(hubs: list[Hub], now: datetime | None = None) -> list[dict]:
    """One row per hub whose state is known, by device ID."""
    at = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for hub in sorted(hubs, key=lambda h: h.eui):
        if not hub.state:
            continue
        board = hub.state.get("board") or ""
        make, model = BOARDS.get(board, ("unknown", board or "unknown"))
        out.append(
            {
                "device_id": hub.eui,
                "make": make,
                "model": model,
                "firmware_version": hub.state.get("version") or "unknown",
                "availability": hub.availability or "unknown",
                "gateway": hub.state.get("gateway") or "",
                "read_at": at,
            }
        )
    return out


def to_csv(table: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()
