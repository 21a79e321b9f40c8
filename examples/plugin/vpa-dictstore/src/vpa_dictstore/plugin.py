"""Registers the `dictstore` store (entry point group ``vpa``). Importing this never imports the
store, nor a vendor client: the registry resolves the string on first use."""

from typing import Any

from vpa.hookspecs import hookimpl


@hookimpl
def vpa_register_stores(register: Any) -> None:
    register("dictstore", "vpa_dictstore.store:DictStore", description="template store over a toy client")
