"""`python -m textgen` runs the command line."""

from .cli import main

main()
