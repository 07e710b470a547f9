"""The session host: the typed HostAPI boundary, HostCore, routing and the wire codec."""
