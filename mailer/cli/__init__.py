"""The command line: one thin module per command group; the only layer that prints or exits."""
