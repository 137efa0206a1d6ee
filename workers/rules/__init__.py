"""Behaviour rules on tracks and camera status: zone intrusion, line crossing, loitering, crowding,
camera offline.

- :mod:`workers.rules.engine` — the pure rule engine (no bus): messages in, alerts out.
- :mod:`workers.rules.worker` — :class:`RulesWorker`, the engine on the bus (``tubeline worker rules``).
- :mod:`pipeline.alerts` — follow the alerts topic for an operator (``tubeline alerts tail``).
"""

from __future__ import annotations
