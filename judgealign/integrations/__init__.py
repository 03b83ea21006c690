"""Integrations with other systems, each the only importer of its library."""
