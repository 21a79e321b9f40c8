"""Placeholder: commands being written (registered on `vpa.cli.main`)."""
