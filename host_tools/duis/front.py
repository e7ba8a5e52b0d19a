"""The stand-in for the DCC Data Systems toward this hub (`dbch duis`): a DUIS request is validated
against the DUIS schema, checked as the DCC checks it (E11, E12, E13, E19, E48, E49, E55), and
forwarded to the agent when it passes; the answer is the DUIS response. The Request IDs already
seen are kept per hub in the user's cache, so that a reused one is answered E55."""

from __future__ import annotations

from host_tools.duis.checks import check_request
from host_tools.duis.errors import DuisConfigError, DuisError
from host_tools.duis.requests import read_request
from host_tools.duis.responses import ACK, CHANNEL, CONFIG, render_response
from host_tools.duis.schema import schema_dir
from host_tools.link.agent import SeenStore, checked
from host_tools.paths import cache_dir

# SRV -> (agent operation, how the agent's answer is rendered)
FORWARD = {
    "6.28": ("config.set", ACK),
    "6.29": ("scan", ACK),
    "6.30": ("config.get", CONFIG),
    "6.31": ("channel", CHANNEL),
    "11.3": ("fw.activate", ACK),
}


def _request_ids(eui: str) -> SeenStore:
    """The Request IDs this host has seen for the hub `eui`."""
    return SeenStore(cache_dir("duis-requests") / (eui.replace("-", "") + ".json"))


def answer(
    client, xml: bytes, schema: str | None, forget: bool = False, check: bool = True
) -> tuple[str, bytes, list[str]]:
    """(response code, DUIS response XML, warnings) for one request, forwarding it if it passes.
    forget: the Request IDs seen for this hub are forgotten first. check=False: the request has
    been decided on already (the DCC front: host_tools.duis.users.decide) and is forwarded as it
    is, its Request ID not kept. DuisConfigError without a usable schema, DuisError for a request
    that is not valid DUIS."""
    try:
        req = read_request(xml, schema_dir(schema))
    except DuisConfigError:
        raise
    except DuisError as e:
        raise DuisError(f"not a valid DUIS 5.4 request: {e}") from e
    warnings = list(req.warnings)
    if check:
        hello = checked(client, "hello")
        eui = hello.data["eui"]
        seen = _request_ids(eui)
        if forget:
            seen.items = set()
        code, message = check_request(req, target_eui=eui, seen_request_ids=seen.items)
        if code is not None:
            warnings.append(message)
            return code, render_response(req, code), warnings
        seen.save()
    op, kind = FORWARD[req.service_reference_variant]
    args = req.args
    if op == "config.set":
        args = {"config": req.args}
    elif op == "fw.activate":
        args = {"hash": req.args["hash"], "execution": req.args.get("execution")}
    r = checked(client, op, args)
    if not r.ok:
        if r.err:
            warnings.append(f"{r.rc}: {r.err}")
        return r.rc, render_response(req, r.rc), warnings
    if kind == CONFIG and r.data is None:
        warnings.append("the hub holds no Sub GHz Configuration yet")
        return r.rc, render_response(req, r.rc, ACK), warnings
    return r.rc, render_response(req, r.rc, kind if kind != ACK else None, r.data), warnings
