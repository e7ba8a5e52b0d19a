"""DUIS as the DCC carries it: the DCC front (`dbch dcc serve`) that DCC Users drive over HTTPS
with their own DUIS tooling, with hubs behind it, and a User's receiving endpoint (`dbch dcc
receive`). CPython only. Import the module that does the job; this package imports none of them:

    tls        the DCC User Interface's TLS: 1.2 only, TLS_RSA_WITH_AES_128_GCM_SHA256, both ways
    routes     the DCC Boxed API paths and the DCC User Interface URL each is (E13)
    seams      where signing, verification and the User list plug in: signed, or --unsigned
    httpd      the HTTPS (or loopback HTTP) server both ends use
    documents  ResponseIDs, and the header items a receiver reports
    queue      the durable delivery queue (one synced file per delivery, backoff)
    deliver    POSTing what is due to each User's receive URL
    hubs       one worker per hub behind the front: requests, and alerts from its outbox
    front      the DCC front
    receiver   a User's receiving endpoint
"""
