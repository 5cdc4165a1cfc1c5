import sys

from fairbench.results.check import main

sys.exit(main(sys.argv[1:]))
