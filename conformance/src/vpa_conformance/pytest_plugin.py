"""The pytest plugin (``pytest11`` entry point): ``--vpa-store NAME`` and friends.

``pytest --pyargs vpa_conformance --vpa-store chroma`` runs the store contract against the
installed store registered as ``chroma``. Without the option this plugin only adds it to
``--help``: the suite's own by-name test module is not even collected, and no fixture, setting or
hook of anyone else's test run changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

BY_NAME_MODULE = "test_registered.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vpa-conformance", "VPA conformance suite")
    group.addoption(
        "--vpa-store",
        action="store",
        default=None,
        metavar="NAME",
        help="run the VPA store contract against the installed store registered as NAME "
        "(with: pytest --pyargs vpa_conformance --vpa-store NAME)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> Any:
    ours = collection_path.name == BY_NAME_MODULE and collection_path.parent == Path(__file__).parent
    if ours and config.getoption("vpa_store", None) is None:
        return True
    return None
