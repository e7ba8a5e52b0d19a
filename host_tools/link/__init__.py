"""The host's link to an agent: transports opened from a --port value, the wire client, and the
operations every command uses."""
