"""The vocabulary every layer shares: input errors, atomic files and folders, the decision rules
(tolerance, regression), the judges' names, the evaluation's random streams and the compute
ledger's arithmetic. Imports nothing of the harness and no torch."""
