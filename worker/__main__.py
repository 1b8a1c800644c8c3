"""`python -m worker` is the `siyu` command."""

from worker.cli import main

main()
