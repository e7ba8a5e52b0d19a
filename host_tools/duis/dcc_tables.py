# The DCC's tables: DUIS response codes with their names, DCC alert codes with their allowed
# response codes, and the GBCS Dual Band CHF alerts with their names and payload kinds, with the
# lookups over them. The DCC side only: a board keeps just what it writes (agent/codes.py: its
# response codes, the GBCS alert codes and the N54 response code of each; tests/host check that
# they agree with these tables).
#
# Sources: SEC Appendix AD (DUIS) Table 1 "DCC Systems Response Codes" and Table 2 "DCCAlert data
# items" as amended by MP260 (../shared/seeds/000_*), Table 42 "DCC Alert Codes / Response Codes
# cross-reference" as amended by SECMP0024 (../shared/seeds/002_*), and the DUIS 5.4 schema's
# sr:ResponseCode enumeration (E0628xx).

# -- Response codes ---------------------------------------------------------------------------
# code: (name, type) -- type is "I" information, "E" error, "W" warning.
RESPONSE_CODES = {
    "I0": ("Success", "I"),
    "I99": ("Acknowledgement", "I"),
    "E1": ("Failed Authorisation - Invalid User / User Role", "E"),
    "E2": ("Failed Authorisation - Invalid User Role / Service Reference", "E"),
    "E3": ("Failed Authorisation - Invalid User Status", "E"),
    "E4": ("Failed Authorisation - Invalid User / User Role for Device", "E"),
    "E5": ("Failed Authorisation - Invalid Device Status", "E"),
    "E11": ("Failed Validation - Invalid Service Request / device type combination", "E"),
    "E12": ("Failed Validation - Invalid Request / Command Variant combination", "E"),
    "E13": ("Failed Validation - Invalid Request Type for URL", "E"),
    "E17": (
        "Failed Authorisation - Service Request or Signed Pre-Command is not available for Local Command Services",
        "E",
    ),
    "E19": ("Failed Authorisation - Device doesn't exist", "E"),
    "E20": ("Communications Failure - Unable to Communicate with Device", "E"),
    "E21": ("Communications Failure - No Response received from Device", "E"),
    "E30": ("Time-out - Future Dated Command", "E"),
    "E31": ("Time-out - DSP Schedule / Future Dated (DSP) Command", "E"),
    "E40": ("Failed Sequenced Command - Invalid First Request", "E"),
    "E41": ("Failed Sequenced Command - Invalid Preceding Request ID", "E"),
    "E42": ("Failed Sequenced Command - Circular Reference", "E"),
    "E43": ("Failed Sequenced Command - Previous Request(s) Failure", "E"),
    "E44": ("Failed Sequenced Command - Previous Request(s) not received", "E"),
    "E45": ("Failed Sequenced Command - Invalid Command Variant", "E"),
    "E46": ("Failed Sequenced Command - Request after Last In Sequence", "E"),
    "E47": ("Failed Sequenced Command - no response to On Demand Command received from device", "E"),
    "E48": ("Failed Validation - Service Request Reference and Variant mismatch", "E"),
    "E49": ("Failed Validation - Service Request Format and Service Reference Variant mismatch", "E"),
    "E50": ("Local Command Services Not Returned", "E"),
    "E51": ("Failed Validation - Signed Pre-Command Message Code and Service Reference Variant mismatch", "E"),
    "E52": ("Failed Validation - Unable to cancel Future Dated (DSP) Service Request", "E"),
    "E53": ("Failed Sequenced Command - Future Dated (DSP) not first in sequence", "E"),
    "E54": ("Failed Sequenced Command - Gas Service Request returns encrypted data", "E"),
    "E55": ("Failed Validation - Duplicate Request ID", "E"),
    "E56": ("Failed Validation - Service Request no longer supported", "E"),
    "E57": ("Failed Validation - Invalid Service Request / GBCS version combination", "E"),
    "E58": ("Communications Failure - Command not delivered to ESME", "E"),
    "E59": ("Dual Band CHF Sub GHz event", "E"),
    "E60": ("Failed Validation - Invalid Service Request for SMETS1 Devices", "E"),
    "E61": ("Failed Validation - Invalid Command Variant for SMETS1 Service Request", "E"),
    "E62": ("SMETS1 Service Provider error or information", "E"),
    "E63": ("DCC Data Systems anti-Replay Intercept", "E"),
    "E64": (
        "Failed Validation - Originator ID is not the Notified Critical Supplier or Notified Critical Network Operator ID",
        "E",
    ),
    "E65": ("Failed Validation - Certificate Role Mismatch", "E"),
    "E66": ("Failed Delivery - Unable to deliver to CoS Party", "E"),
    "E67": ("Timeout - No response received from CoS Party", "E"),
    "E68": ("Failed Validation - Service Request failed CoS Party Validation", "E"),
    "E69": ("Failed Validation - CoS Service Request failed anti-replay checks", "E"),
    "E70": ("Failed Validation - CoS Anomaly Detection Threshold Breach", "E"),
    "E71": ("Failed Validation - Invalid Response from CoS Party", "E"),
    "E100": ("Failed Authentication", "E"),
    # Service-specific codes that Table 42 allows for N7 and N26 (named there, defined per Service
    # Request elsewhere in DUIS).
    "E1007": ("Service-specific code allowed for N7 and N26 by Table 42", "E"),
    "E060502": ("Service-specific code of SRV 6.5 allowed for N7 by Table 42", "E"),
    "E062304": ("Service-specific code of SRV 6.23 allowed for N26 by Table 42", "E"),
    # SRV 6.28 Set CHF Sub GHz Configuration (DUIS 3.8.82; sr:ResponseCode in the 5.4 schema).
    # The one place this project reads them:
    #   E062801  the channel sets cannot be used: no lower-band channel at all, or a channel
    #            outside its page (seed: "See Response Code E062801" on every channel data item).
    #   E062802  a lower-band page (28, 29 or 30) that is used has fewer than two channels
    #            (SEC F4 Annex: "where Pages are used, at least two channels must be configured").
    #   E062803  listed by the schema with no text in the seeds: this project uses it for any
    #            other data item (5-15) outside its DUIS 5.4 range or with too many decimal places.
    # SRV 5.1 CreateSchedule: the schema lists E050101-E050112 and the seeds give them no text;
    # host_tools.duis.dsp uses these four, one per data item the seed's rules judge.
    "E050101": ("CreateSchedule: ScheduleStartDate not a valid date in the future", "E"),
    "E050102": ("CreateSchedule: ScheduleEndDate not a valid future date >= ScheduleStartDate", "E"),
    "E050103": ("CreateSchedule: ScheduleExecutionStartTime not a valid time", "E"),
    "E050105": ("CreateSchedule: ScheduleFrequency not one of the six", "E"),
    "E062801": ("Sub GHz channel configuration invalid", "E"),
    "E062802": ("Fewer than two channels configured on a used lower-band page", "E"),
    "E062803": ("Sub GHz configuration parameter out of range", "E"),
}

# -- DCC alert codes (Table 42, with N59-N63 from Table 2) ----------------------------------------
# code: (name, allowed response codes, sr:DCCAlert body element). Names from Table 41 where the
# seeds carry them, otherwise from Table 2's DCC Alert Format column.
_I0 = ("I0",)
DCC_ALERTS = {
    "AD1": ("Power Outage Event", _I0, "PowerOutageEvent"),
    "N1": ("Device SMI Status change", _I0, "DeviceStatusChangeEvent"),
    "N2": ("Device SMI Status change", _I0, "DeviceStatusChangeEvent"),
    "N3": ("Command failure", _I0, "CommandFailure"),
    "N4": ("DSP Schedule removal", _I0, "DSPScheduleRemoval"),
    "N5": ("DSP Schedule removal", _I0, "DSPScheduleRemoval"),
    "N6": ("DSP Schedule removal", _I0, "DSPScheduleRemoval"),
    "N7": (
        "Command failure",
        ("E1", "E2", "E3", "E4", "E5", "E19", "E56", "E57", "E1007", "E060502"),
        "CommandFailure",
    ),
    "N8": ("Device SMI Status change", _I0, "DeviceStatusChangeEvent"),
    "N9": ("Device SMI Status change", _I0, "DeviceStatusChangeEvent"),
    "N10": ("Command failure", ("E30",), "CommandFailure"),
    "N11": ("Command failure", ("E31",), "CommandFailure"),
    "N12": ("Command failure", ("E20",), "CommandFailure"),
    "N13": ("Command failure", ("E21",), "CommandFailure"),
    "N14": ("Command failure", ("E43", "E46", "E47"), "CommandFailure"),
    "N15": ("Command failure", ("E44",), "CommandFailure"),
    "N16": ("Device SMI Status change", _I0, "DeviceStatusChangeEvent"),
    "N17": ("DSP Schedule removal", _I0, "DSPScheduleRemoval"),
    "N18": ("Firmware distribution failure", _I0, "FirmwareDistributionFailure"),
    "N19": ("Firmware distribution failure", _I0, "FirmwareDistributionFailure"),
    "N20": ("Firmware distribution failure", _I0, "FirmwareDistributionFailure"),
    "N21": ("Firmware distribution failure", _I0, "FirmwareDistributionFailure"),
    "N22": ("Firmware distribution failure", ("E20",), "FirmwareDistributionFailure"),
    "N23": ("Firmware distribution failure", ("E21",), "FirmwareDistributionFailure"),
    "N24": ("Update HAN Device Log result", _I0, "UpdateHANDeviceLogResult"),
    "N25": ("Update HAN Device Log result", _I0, "UpdateHANDeviceLogResult"),
    "N26": ("Change of Supplier", ("E1", "E2", "E3", "E4", "E5", "E19", "E1007", "E062304"), "ChangeOfSupplier"),
    "N27": ("Change of Supplier", _I0, "ChangeOfSupplier"),
    "N28": ("Device SMI Status change", _I0, "DeviceStatusChangeEvent"),
    "N29": ("Device SMI Status change", _I0, "DeviceStatusChangeEvent"),
    "N30": ("Device Log restored", _I0, "DeviceLogRestored"),
    "N31": ("Device Log restored", _I0, "DeviceLogRestored"),
    "N33": ("Command failure", _I0, "CommandFailure"),
    "N34": ("Command failure", _I0, "CommandFailure"),
    "N35": ("Command failure", _I0, "CommandFailure"),
    "N36": ("Command failure", _I0, "CommandFailure"),
    "N37": ("DSP Schedule removal", _I0, "DSPScheduleRemoval"),
    "N38": ("Command failure", _I0, "CommandFailure"),
    "N39": ("PPMID Alert", _I0, "PPMIDAlert"),
    "N40": ("DSP Schedule removal", _I0, "DSPScheduleRemoval"),
    "N41": ("Command failure", _I0, "CommandFailure"),
    "N42": ("Security Credentials Updated", _I0, "SecurityCredentialsUpdated"),
    "N43": ("PPMID Removal", _I0, "PPMIDRemoval"),
    "N44": ("Device SMI Status change", _I0, "DeviceStatusChangeEvent"),
    "N45": ("Device SMI Status change", _I0, "DeviceStatusChangeEvent"),
    "N46": ("Quarantined Request", _I0, "QuarantinedRequest"),
    "N47": ("Quarantined Request", _I0, "QuarantinedRequest"),
    "N48": ("Quarantined Request", _I0, "QuarantinedRequest"),
    "N49": ("Firmware Version Mismatch - CPL status Current", _I0, "FirmwareVersionMismatch"),
    "N50": ("Firmware Version Mismatch - CPL status Removed", _I0, "FirmwareVersionMismatch"),
    "N51": ("Firmware Version Mismatch - no CPL entry", _I0, "FirmwareVersionMismatch"),
    "N52": ("Firmware Version Mismatch - GPF", _I0, "FirmwareVersionMismatch"),
    "N53": ("Command failure - Command not delivered to ESME", ("E58",), "CommandFailure"),
    # N54's allowed code depends on the GBCS alert carried: see GBCS_ALERTS and allowed_response().
    "N54": ("Dual Band CH Alert", ("I0", "E59"), "DualBandCHAlert"),
    "N55": ("S1SP Alert", ("E62",), "S1SPAlertDSP"),
    "N56": ("S1SP Alert - prepayment top-up UTRN", _I0, "S1SPAlertDSP"),
    "N57": ("SMETS1 CH Firmware Notification", _I0, "SMETS1CHFirmwareNotification"),
    "N58": ("ALCS/HCALCS configuration change", _I0, "ALCSHCALCSCConfigurationChange"),
    # N59-N63 and N65 are in Table 2 and the 5.4 schema, but no seed gives their response codes.
    "N59": ("Firmware Upgrade Requested", None, "FirmwareUpgradeRequested"),
    "N60": ("CSP Firmware Delivery Status", None, "CSPFirmwareDeliveryStatus"),
    "N61": ("CSP Firmware Delivery Status", None, "CSPFirmwareDeliveryStatus"),
    "N62": ("Comms Hub Alert", None, "CommsHubAlert"),
    "N63": ("ECoS Alert", None, "ECoSAlert"),
    "N64": ("Comms Hub Firmware Activation", _I0, "CommsHubFirmwareActivation"),
    "N65": ("CoS Certificate Alert", None, "CoSCertificateAlert"),
    "N999": ("DUIS Version Mismatch", _I0, "DUISVersionMismatch"),
}

# -- GBCS Dual Band CHF alerts (0x8F20-0x8F2D) ---------------------------------------------------
# code: (name, N54 response code, payload kind). The response codes are Table 42's rule for N54;
# a board keeps only that column, as agent.codes.gbcs_alert_rc (tests check that they agree).
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


def gbcs_alert_hex(code):
    """0x8F20 -> '8F20' (sr:DeviceAlertCode is hexBinary of two octets)."""
    return "{:04X}".format(code)


# -- Lookups -----------------------------------------------------------------------------------
def is_success(code):
    return code[0] == "I"


def response_name(code):
    entry = RESPONSE_CODES.get(code)
    return entry[0] if entry else None


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
    entry = DCC_ALERTS.get(dcc_alert)
    if entry is None:
        raise ValueError("unknown DCC alert code: {}".format(dcc_alert))
    return entry[1]
