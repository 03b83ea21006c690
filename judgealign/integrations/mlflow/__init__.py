"""MLflow: tracking store, prompt registry, scorer registry, traces. The only package that
imports mlflow.
"""
