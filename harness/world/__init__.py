"""What the embedded tiny world *is*: its configuration, its topics and dialogues, the gold reward
(a function of the text alone) and its capability tasks. Pure Python, no torch; imports ``core``.
Building it (training its tokenizer and models) is ``harness.builder``'s."""
