"""The vocabulary every layer shares: input errors, atomic files, the decision rules (tolerance,
regression) and the judges' names. Imports nothing of the harness."""
