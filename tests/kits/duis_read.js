// The DCC's own DUIS reader (npm @smartdcc/duis-parser) over DUIS documents: for each file named
// on the command line, one JSON line {file, ok, kind, error}. ok: parseDuis("simplified") read it
// and isSimplifiedDuisOutput() accepts what it read, as a DCC Boxed client checks a message it
// receives. kind: "request", "ResponseMessage:<what it carries>", "DCCAlertMessage:<code>" or
// "DeviceAlertMessage". The package's folder is the first argument.
"use strict";
const fs = require("fs");
const path = require("path");

const parser = require(path.join(process.argv[2], "node_modules", "@smartdcc", "duis-parser"));
const PAYLOADS = [
  "CINMessage", "DSPInventory", "DSPOptIn", "DSPSchedulesRead", "DSPScheduledMessage", "DSPScheduleID",
  "DSPUpdateFirmwareWarning", "DSPUpdatePPMIDFirmwareWarning", "DSPWANMatrix",
  "FutureDatedDeviceAlertMessage", "GBCSPayload", "LocalCommand", "PreCommand", "NoBody",
];

function kind(duis) {
  if (duis.header.type === "request") return "request";
  const body = duis.body;
  if (parser.isSimplifiedDuisResponseBody_DCCAlertMessage(body)) return "DCCAlertMessage:" + body.DCCAlertMessage.DCCAlertCode;
  if (parser.isSimplifiedDuisResponseBody_DeviceAlertMessage(body)) return "DeviceAlertMessage";
  for (const p of PAYLOADS) {
    if (parser.isSimplifiedDuisResponseBody_ResponseMessage_X(p, body)) return "ResponseMessage:" + p;
  }
  return "unknown";
}

for (const file of process.argv.slice(3)) {
  let out;
  try {
    const duis = parser.parseDuis("simplified", fs.readFileSync(file));
    if (!parser.isSimplifiedDuisOutput(duis)) {
      out = { file, ok: false, kind: null, error: "not a DUIS message the reader accepts (isSimplifiedDuisOutput)" };
    } else {
      out = { file, ok: true, kind: kind(duis), error: null };
    }
  } catch (e) {
    out = { file, ok: false, kind: null, error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
