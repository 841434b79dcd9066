"""`python -m pipesim`: the same as the `pipesim` command."""

from pipesim.cli import main

main()
