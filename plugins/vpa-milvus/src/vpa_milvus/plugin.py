"""Registers the `milvus` store (entry point group ``vpa``); pymilvus is imported on first use."""

from typing import Any

from vpa.hookspecs import hookimpl


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register(
        "milvus",
        "vpa_milvus.store:MilvusStore",
        description="Milvus via pymilvus: Milvus Lite file under VPA_DATA_DIR/milvus, or a Milvus server",
    )
