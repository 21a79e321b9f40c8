"""VPA store plugin for Pinecone serverless, built on the official ``pinecone`` SDK."""

from vpa_pinecone.store import CAPABILITIES, PineconeStore

__all__ = ["CAPABILITIES", "PineconeStore"]
__version__ = "0.1.0"
