"""``[providers.dictstore]`` options: typed, with their help text (``vpa config`` shows them)."""

from __future__ import annotations

import attrs
from vpa.settings import setting


@attrs.frozen
class DictStoreSettings:
    max_batch_size: int = setting(500, "records per write call to the backend")
