"""VPA store plugin for Pinecone serverless, built on the official ``pinecone`` SDK."""

__version__ = "0.3.0"
