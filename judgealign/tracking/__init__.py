"""Tracking: the Tracker protocol with a no-op default, the observer that turns what the
library did into runs, metrics and figures, and the background writer. Domain code never
imports this package: it publishes through judgealign.core's observation seam.
"""
