"""DUIS 5.4 as the DCC speaks it to this hub: the XML messages, the DCC's schema and templates,
and the stand-in for the DCC Data Systems (`dbch duis`, whose command line is host_tools.cli.duis).
CPython only. Import the module that does the job; this package imports none of them:

    errors      DuisError and its kinds
    xml         the DUIS namespaces and the ElementTree helpers
    times       xs:dateTime as DUIS writes it (UTC)
    assets      the DCC's schema and DCC Boxed templates, fetched from npm packages
    schema      which schema folder, loading it, validating against it
    services    the hub's services (6.28-6.32, 11.2, 11.3) and the requests that are not for a device
    config      the CHF Sub GHz Configuration and operating channel as XML, and back
    requests    reading Service Requests (parse_request, read_request)
    checks      the DCC's checks of a request toward this hub (check_request)
    signing     DUIS message signatures as DCC Boxed makes them (sign, verify: E100)
    signtool    the DCC Boxed signing tool (npm @smartdcc/duis-sign-wrap's jar, on Java)
    userlist    the User list: Users, roles, Eligible Users, SMI statuses (load_users)
    users       access control: authenticate (E100), authorise (E1-E5), decide (then checks)
    compose     writing Service Requests (request_xml)
    responses   Service Responses as sr:Response (render_response, payload_data)
    alerts      DCC Alerts N54 and N64 (render_alert)
    dcc_tables  the DCC's response codes and alert codes, with their names
    schedule    DCC schedule frequencies (CreateSchedule)
    dsp         DCC Schedules: CreateSchedule validated, stored, given its DSPScheduleID
    front       answering a request as the DCC Data Systems would: serve_device (Acknowledgement,
                then Service Response), serve_non_device (CreateSchedule), answer
"""
