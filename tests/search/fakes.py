"""A scripted `Sampler` and a table-driven scorer: every strategy's choices become exact."""

from __future__ import annotations

from collections import defaultdict

from reasonloop.types import Sample, split_steps


class ScriptedSampler:
    """Continuations by prefix: `script[prefix]` is cycled through, one item per sample.

    A continuation ending with "\\n" finishes with "stop" (the step separator), otherwise
    "eos". One token per character, so token counts are the continuation lengths.
    Every call is logged as (prompts, k, params, prefixes).
    """

    model_id = "scripted"

    def __init__(self, script: dict[str, list[str]]):
        self.script = script
        self.used: dict[str, int] = defaultdict(int)
        self.calls = []

    def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
        prefixes = prefixes or [""] * len(prompts)
        self.calls.append((list(prompts), samples_per_prompt, params, list(prefixes)))
        groups = []
        for prompt, prefix in zip(prompts, prefixes):
            options = self.script[prefix]
            group = []
            for _ in range(samples_per_prompt):
                text = options[self.used[prefix] % len(options)]
                self.used[prefix] += 1
                group.append(Sample(problem_id="", prompt=prompt, text=text, token_ids=list(range(len(text))),
                                    finish_reason="stop" if text.endswith("\n") else "eos",
                                    steps=split_steps(prefix + text), meta={"prefix": prefix}))
            groups.append(group)
        return groups


class TableScorer:
    """Process scorer: each step's score is `table[step]` (default 0.5)."""

    name = "table"

    def __init__(self, table: dict[str, float], kind: str = "process"):
        self.table, self.kind, self.calls = table, kind, []

    def score(self, problems, solutions):
        self.calls.append([list(s) for s in solutions])
        if self.kind == "outcome":
            return [[self.table.get(s[-1] if s else "", 0.5)] for s in solutions]
        return [[self.table.get(step, 0.5) for step in steps] for steps in solutions]
