"""The fleet over MQTT: `dbch gateway` attaches the hubs of its ports to an MQTT broker (paho-mqtt,
MQTT 5 over TLS with a client certificate from `dbch pki`).

Topics, per hub (EUI as the agent gives it, e.g. 00-DB-12-34-56-78-90-A2):
    dbch/<EUI>/state               retained: identity, firmware, configuration masks, duty cycle
    dbch/<EUI>/availability        retained "online"; "offline" as the connection's will
    dbch/<EUI>/alert/<code>        QoS 1, one message per upward event (code: the DeviceAlertCode
                                   of an N54, else the event's kind: N64, incident, restore, ...)
    dbch/<EUI>/cmd/<command>       requests (status, config/get, config/set: its payload the
                                   JSON {"config": ..., "region": ...}), answered on their MQTT 5 response
                                   topic with their correlation data
"""
