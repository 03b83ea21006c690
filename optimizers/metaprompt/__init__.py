"""Metaprompt optimization: zero-shot, few-shot and iterative rewriting of prompts by a model."""
