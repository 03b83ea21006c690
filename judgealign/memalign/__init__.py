"""MemAlign: the alignment optimizer, semantic memory (guidelines) and episodic memory
(embedded records in a vector index), distillation, the aligned judge, its file format
and the alignment result.
"""
