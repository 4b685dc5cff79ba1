import sys

from handgrad.exercises.cli import main

sys.exit(main())
