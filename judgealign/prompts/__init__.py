"""Prompt text a caller swaps in for registered text (per thread), and scoring a predict_fn
with chosen prompt texts.
"""
