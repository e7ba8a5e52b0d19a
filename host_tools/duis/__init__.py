"""DUIS 5.4 as the DCC speaks it to this hub: the XML messages, the DCC's schema and templates,
and the stand-in for the DCC Data Systems (`dbch duis`)."""
