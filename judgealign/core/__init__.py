"""The foundation every other piece stands on: errors, usage accounting, redaction, crash-
safe files, the observation seam and the context-carrying thread pool. Imports nothing
else of judgealign.
"""
