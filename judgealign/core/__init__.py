"""The foundation every other piece stands on: errors, usage accounting, redaction, crash-
safe files and the observation seam. Imports nothing else of judgealign.
"""
