"""Everything after the runs: the long tables, judged samples and comparisons on disk, the
leaderboard (Markdown and HTML with plots), curves, and the regression gate. Imports ``evaluation``
(the compute ledger), ``stats``, ``suite``, ``core``; never ``run``."""
