"""Evaluating a policy the same way for every run: judged samples and win-rates against the
reference, KL, lm-eval capability, best-of-n curves, checkpoints during training, the parameter
counts the compute ledger prices. Imports ``load``, ``stats``, ``suite``, ``world``, ``core`` and
``methods``."""
