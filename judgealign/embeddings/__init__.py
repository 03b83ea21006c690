"""Embedders behind one protocol: the local MiniLM, hashing, and remote models reached
through litellm.
"""
