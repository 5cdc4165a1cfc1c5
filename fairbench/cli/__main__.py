"""`python -m fairbench.cli`: the same command as `fairbench`."""

from fairbench.cli import main

main()
