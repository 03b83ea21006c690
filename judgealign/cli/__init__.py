"""The ``judgealign`` command line: one module per command (entry point ``_main.main``)."""
