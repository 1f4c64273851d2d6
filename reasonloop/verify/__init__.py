"""Verifiers and reward functions: plain callables `(problem, completion) -> float | None`."""
