"""Reference scorers (measure responses) and heuristic scorers (predict from prompts)."""
