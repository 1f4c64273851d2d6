"""Test-time compute: strategies that spend more generation (and scoring) on a problem.

Every strategy is a function `strategy(problems, sampler, scorer, cfg) -> list[Selection]`
(search-and-learn style) with its own small config dataclass; `STRATEGIES` maps the
name used in configs to (function, config class). Compute is counted per problem in
`Selection.budget` (see `search.budget`). Documentation and results: docs/search.md.
"""

from reasonloop.search.beam import BeamConfig, beam_search
from reasonloop.search.best_of_n import BestOfNConfig, best_of_n, weighted_best_of_n
from reasonloop.search.common import Selection
from reasonloop.search.cosc import CoSCConfig, cosc
from reasonloop.search.dvts import DVTSConfig, dvts
from reasonloop.search.greedy import GreedyConfig, greedy
from reasonloop.search.majority import MajorityConfig, majority
from reasonloop.search.mcts import MCTSConfig, mcts
from reasonloop.search.scorers import Scorer, ScorerConfig, make_scorer
from reasonloop.search.self_correct import SelfCorrectConfig, self_correct

STRATEGIES: dict[str, tuple] = {
    "greedy": (greedy, GreedyConfig),
    "majority": (majority, MajorityConfig),
    "best_of_n": (best_of_n, BestOfNConfig),
    "weighted_best_of_n": (weighted_best_of_n, BestOfNConfig),
    "beam": (beam_search, BeamConfig),
    "dvts": (dvts, DVTSConfig),
    "mcts": (mcts, MCTSConfig),
    "self_correct": (self_correct, SelfCorrectConfig),
    "cosc": (cosc, CoSCConfig),
}


def build_strategy_config(name: str, options: dict, where: str = "strategy"):
    """The config dataclass of strategy `name` from a dict of options, with errors naming the key."""
    if name not in STRATEGIES:
        raise KeyError(f"{where}: unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    from reasonloop.config import coerce

    return coerce(dict(options), STRATEGIES[name][1], where)


__all__ = ["STRATEGIES", "Scorer", "ScorerConfig", "Selection", "build_strategy_config", "make_scorer"]
