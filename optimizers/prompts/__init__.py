"""Prompt handling: templates and their variables, registries with versions and aliases,
per-thread candidate swapping, prompt steps.
"""
