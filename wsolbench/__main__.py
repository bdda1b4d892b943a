"""``python -m wsolbench``: the command line (also how a bench starts its local worker processes)."""

from wsolbench.cli import main

main()
