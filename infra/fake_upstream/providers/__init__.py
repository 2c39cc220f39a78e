"""Each provider's wire format, one module each, on the fake's one server.

``routes(upstream)`` is the one table of every provider route; the modules share ``reply``
(what the model says, exact usage), ``common`` (faults, pacing, stats) and ``schema_values``.
"""
