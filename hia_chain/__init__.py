"""hia_chain: inference-time alignment for LangChain chat models."""
