import sys

from handgrad.exercises.cli import main

if __name__ == "__main__":                  # not when a documentation tool imports every module
    sys.exit(main())
