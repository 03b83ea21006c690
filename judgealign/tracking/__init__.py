"""Tracking: the Tracker protocol with a no-op default, the observer that turns what the
library did into runs, metrics and figures, and the background writer. Domain code never
imports this package: it publishes through judgealign.core's observation seam.
"""

from judgealign.core._events import add_observer
from judgealign.tracking._events import observe

# Setting a tracker imports this package, so the observer is always in place by the time
# a tracker other than the no-op one can be in effect.
add_observer(observe)
