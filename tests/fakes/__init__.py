"""Stand-ins for outside services, each a real HTTP server on loopback."""
