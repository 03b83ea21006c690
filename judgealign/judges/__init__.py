"""Judges: make_judge, Judge, verdict types and their coercion, Feedback, labelled records
and their loaders, field limits.
"""
