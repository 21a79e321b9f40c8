"""A wire-level stand-in for Pinecone (control and data planes), used only by these tests."""

from .server import PineconeStandIn

__all__ = ["PineconeStandIn"]
