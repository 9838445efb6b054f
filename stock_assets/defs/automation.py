"""Automation conditions the assets of several domains share."""

import dagster as dg

# Eager, except that a time-partitioned parent always has a partition not yet filled (today's,
# before its bars arrive): waiting for none to be missing would wait forever.
AFTER_NEW_PREDICTIONS = dg.AutomationCondition.eager().without(
    ~dg.AutomationCondition.any_deps_missing()
)
