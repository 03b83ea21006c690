"""GEPA: Pareto pool, reflective mutation, minibatch acceptance, merge, hard budget and resume."""
