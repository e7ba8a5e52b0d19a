"""The Triage System Interface's security on the host: the development PKI and IPsec."""
