"""The kinds of channel a hold can be announced on: each checks its config, keeps its secrets sealed, and
sends a :class:`~mesh.delivery.channels.base.Notice` its own way."""
