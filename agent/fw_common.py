# What the firmware service's modules share, so that their imports point one way: the service
# (agent.fw_service) loads the staging (agent.fw_staging), which loads the checks and unpacking
# (agent.fw_install) and the activation (agent.fw_activate), and each of them imports this module
# and nothing of the others. Here: the response codes and FwError, the limits a board may lower,
# the files under the firmware root, the checks of a request's arguments, and the bootloader's
# code (agent/boot.py: slots, boot state, security counters), loaded only while it is used.
#
# Response codes (agent.codes):
#   I0    done
#   E49   malformed arguments, a chunk at the wrong offset, too large, truncated or malformed
#         image (the err text says which)
#   E11   the image is for another board (device type)
#   E100  authentication failed: bad signature, content that does not hash to the signed hash
#         (or a payload that does not match its manifest's sha256), or no trusted signing key
#         on the device; a failed check is recorded as a security incident (agent.incidents)
#   E5    the device's state does not allow it: no staged and verified image has this hash
#         (data {outcome: "noImageHeld" | "hashMismatch"}, GBCS's outcome for it),
#         a trial boot is not yet confirmed, an activation is scheduled, nothing staged, or the
#         flash failed (full); and (RC_ROLLBACK) an image below the minimum security counter
#         without a rollback permission, or a permission for another hub or image: the err
#         text says "minimum" or "rollback permission", data {sec, min}; recorded as a security
#         incident ("image_rollback", major at the first)
#   E52   fw.cancel with no scheduled activation (Unable to cancel Future Dated Request)
#   A rollback permission that is malformed is E49, one with a bad signature E100 (and a
#   "tampered_image" incident, as for an image).
from hal.compat import const, unload

RC_OK = "I0"
RC_BAD = "E49"  # = agent.fw_image.RC_FORMAT
RC_AUTH = "E100"
RC_STATE = "E5"
RC_ROLLBACK = "E5"  # an image below the minimum security counter: the device's state refuses it
RC_NO_CANCEL = "E52"

MAX_IMAGE = const(2097152)  # default largest CONTENT; a board may set FW_MAX_IMAGE
MAX_CHUNK = const(4000)  # default data bytes of one fw.chunk (its frame stays under wire.MAX_BODY);
# a board with a small heap may set FW_MAX_CHUNK lower (the host sends what fw.begin announces)
CONFIRM_MS = const(2000)  # default healthy running time before a trial is confirmed
EVENT = "firmware"  # the outbox event of an activation that did not end in N64
ROLLBACK = "image_rollback"  # the incident kind of an image refused for being below the minimum
STAGE = "slots/stage.img"  # an image being received, under the firmware root


class FwError(Exception):
    def __init__(self, code, msg, data=None):
        super().__init__(msg)
        self.code = code
        self.data = data


def arg_bytes(args, name, lo, hi):
    v = args.get(name)
    if not isinstance(v, (bytes, bytearray)) or not lo <= len(v) <= hi:
        if lo == hi:
            raise FwError(RC_BAD, "{} must be {} bytes".format(name, lo))
        raise FwError(RC_BAD, "{} must be {} to {} bytes".format(name, lo, hi))
    return bytes(v)


def arg_int(args, name):
    v = args.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise FwError(RC_BAD, "{} must be a non-negative integer".format(name))
    return v


def parent_dir(path):
    i = path.rfind("/")
    if i < 0:
        return ""
    if i == 0:
        return "/"
    return path[:i]


def mkdirs(fs, path, known=None):
    if not path or path == "/" or (known is not None and path in known):
        return
    if not fs.exists(path):
        mkdirs(fs, parent_dir(path), known)
        fs.mkdir(path)
    if known is not None:
        known.append(path)


def boot_code():
    # The bootloader's choosing code, as this slot has it (agent.boot: the bootloader on the board
    # loads its own copy only while it chooses a slot), loaded for the moment it is needed
    # (drop_boot_code). Both read and write the same files.
    from agent import boot

    return boot


def drop_boot_code():
    # agent.boot unloaded again (after a boot-time reading or a fw.* operation: nothing keeps it)
    unload("agent.boot")
