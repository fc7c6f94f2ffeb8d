"""`python -m osmodel` runs the run-elf command line."""

from osmodel.cli import main

main()
