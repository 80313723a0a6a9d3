"""Running a suite: the runner (expand, skip what is done, collect), the Ray scheduler (the only
module importing ``ray``), one run's execution, the shared reference evaluation, preflight checks,
the live display, tracking and provenance. Imports everything below it; never ``cli``."""
