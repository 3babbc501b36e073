"""`python -m course_lib` runs the `course` command line."""
from course_lib.cli import main

raise SystemExit(main())
