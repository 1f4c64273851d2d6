"""Each strategy's selection logic and compute accounting, exactly, with scripted fakes."""

import math

import pytest
from fakes import ScriptedSampler, TableScorer

from reasonloop.search import STRATEGIES
from reasonloop.search.beam import BeamConfig, beam_search, top_k
from reasonloop.search.best_of_n import BestOfNConfig, best_of_n, weighted_best_of_n, weighted_vote
from reasonloop.search.budget import Budget
from reasonloop.search.common import Partial
from reasonloop.search.dvts import DVTSConfig, dvts
from reasonloop.search.greedy import GreedyConfig, greedy
from reasonloop.search.majority import MajorityConfig, majority
from reasonloop.search.mcts import MCTSConfig, Node, backup, mcts, select_child, select_leaf, uct
from reasonloop.search.self_correct import SelfCorrectConfig, first_flagged, self_correct
from reasonloop.types import Problem
from reasonloop.verify.aggregate import aggregate

P = [Problem(id="p0", prompt="Q0\n", answer="7")]


# --- aggregation ------------------------------------------------------------------------

def test_aggregations_by_hand():
    s = [0.9, 0.5, 0.8]
    assert aggregate(s, "last") == 0.8
    assert aggregate(s, "min") == 0.5
    assert aggregate(s, "prod") == pytest.approx(0.36)
    assert aggregate(s, "mean") == pytest.approx(2.2 / 3)
    assert aggregate([], "min") == 0.0
    with pytest.raises(ValueError, match="aggregation"):
        BestOfNConfig(aggregation="max")


# --- greedy and majority ----------------------------------------------------------------

def test_greedy_one_call_at_temperature_zero():
    sampler = ScriptedSampler({"": ["1 + 2 = 3\nAnswer: 3"]})
    (sel,) = greedy(P, sampler, None, GreedyConfig(max_new_tokens=50))
    assert sel.answer == "3" and sel.budget.as_dict() == {"tokens": 19, "model_calls": 1, "scorer_calls": 0}
    assert sampler.calls[0][2].temperature == 0.0


def test_majority_vote_ties_go_to_first_answer_and_no_answer_does_not_vote():
    texts = ["Answer: 5", "no answer here", "Answer: 4", "Answer: 05", "Answer: 4", "junk"]
    # 5 (via "5" and "05") and 4 both have two votes: 5 was seen first
    (sel,) = majority(P, ScriptedSampler({"": texts}), None, MajorityConfig(n=6))
    assert sel.answer == "5" and sel.text == "Answer: 5"
    assert sel.budget.tokens == sum(map(len, texts)) and sel.budget.model_calls == 6


def test_majority_token_budget_stops_drawing_rounds():
    texts = ["Answer: 1", "Answer: 2"]  # 9 tokens each
    sampler = ScriptedSampler({"": texts})
    (sel,) = majority(P, sampler, None, MajorityConfig(n=8, chunk=2, token_budget=30))
    # rounds of 2 samples: 18 tokens, 36 >= 30: stop after round 2
    assert sel.budget.tokens == 36 and len(sel.candidates) == 4 and len(sampler.calls) == 2
    assert sampler.calls[0][2].seed != sampler.calls[1][2].seed


# --- best-of-N ---------------------------------------------------------------------------

def test_best_of_n_uses_the_aggregation_and_counts_scorer_calls():
    a = "good\nbad\nAnswer: 1"   # steps 0.9, 0.1, 0.95 -> last 0.95, min 0.1
    b = "ok\nok\nAnswer: 2"      # steps 0.6, 0.6, 0.7  -> last 0.7,  min 0.6
    table = {"good": 0.9, "bad": 0.1, "Answer: 1": 0.95, "ok": 0.6, "Answer: 2": 0.7}
    (last,) = best_of_n(P, ScriptedSampler({"": [a, b]}), TableScorer(table), BestOfNConfig(n=2, aggregation="last"))
    (mins,) = best_of_n(P, ScriptedSampler({"": [a, b]}), TableScorer(table), BestOfNConfig(n=2, aggregation="min"))
    assert last.answer == "1" and mins.answer == "2"
    assert last.scores == [0.95, 0.7] and mins.budget.scorer_calls == 2


def test_weighted_best_of_n_sums_scores_per_answer():
    texts = ["Answer: 3", "Answer: 4", "Answer: 4"]
    scorer = TableScorer({"Answer: 3": 0.9, "Answer: 4": 0.5}, kind="outcome")
    (plain,) = best_of_n(P, ScriptedSampler({"": texts}), scorer, BestOfNConfig(n=3))
    (weighted,) = weighted_best_of_n(P, ScriptedSampler({"": texts}), scorer, BestOfNConfig(n=3))
    assert plain.answer == "3" and weighted.answer == "4"  # 0.5 + 0.5 > 0.9
    assert weighted_vote(["3", "4"], [0.5, 0.5]) == "3"      # tie: first seen


def test_best_of_n_requires_a_scorer():
    with pytest.raises(ValueError, match="needs a scorer"):
        best_of_n(P, ScriptedSampler({"": ["x"]}), None, BestOfNConfig(n=1))


# --- beam search -------------------------------------------------------------------------

BEAM_SCRIPT = {
    "": ["a\n", "b\n", "c\n", "d\n"],
    "a\n": ["a1\n", "Answer: 1"],
    "c\n": ["c1\n", "Answer: 3"],
    "a\na1\n": ["Answer: 11", "Answer: 12"],
    "c\nc1\n": ["Answer: 31", "Answer: 32"],
}
BEAM_TABLE = {"a": 0.9, "b": 0.2, "c": 0.8, "d": 0.1, "a1": 0.3, "c1": 0.7, "Answer: 1": 0.5, "Answer: 3": 0.6,
              "Answer: 11": 0.2, "Answer: 12": 0.3, "Answer: 31": 0.95, "Answer: 32": 0.4}


def test_beam_keeps_top_n_over_m_and_expands_each_survivor_m_times():
    sampler = ScriptedSampler(BEAM_SCRIPT)
    scorer = TableScorer(BEAM_TABLE)
    (sel,) = beam_search(P, sampler, scorer, BeamConfig(n=4, beam_width=2, max_steps=5))
    # depth 0: root -> 4 steps; top 4/2 = 2 by score: a (0.9), c (0.8)
    assert sampler.calls[0][1] == 4 and sampler.calls[0][3] == [""]
    assert sampler.calls[1][1] == 2 and sampler.calls[1][3] == ["a\n", "c\n"]
    # depth 1: a1 (0.3), "Answer: 1" (done), c1 (0.7), "Answer: 3" (done); survivors: c1, a1
    assert sampler.calls[2][3] == ["c\nc1\n", "a\na1\n"]
    # depth 2 finishes 4 more: 6 finished >= n = 4, search stops; best (last) = "Answer: 31" (0.95)
    assert len(sampler.calls) == 3
    assert sel.answer == "31" and sel.text == "c\nc1\nAnswer: 31"
    assert len(sel.candidates) == 6
    tokens = sum(map(len, ["a\n", "b\n", "c\n", "d\n", "a1\n", "Answer: 1", "c1\n", "Answer: 3",
                           "Answer: 31", "Answer: 32", "Answer: 11", "Answer: 12"]))
    assert sel.budget.as_dict() == {"tokens": tokens, "model_calls": 12, "scorer_calls": 12}
    assert sampler.calls[0][2].stop == ["\n"]
    # the tree `reasonloop view` draws: every expansion under its parent, survivors kept, the answer chosen
    tree = sel.meta["tree"]
    assert [c["step"] for c in tree["children"]] == ["a\n", "b\n", "c\n", "d\n"]
    a, _, c, _ = tree["children"]
    assert (a.get("kept"), c.get("kept"), tree["children"][1].get("kept")) == (True, True, None)
    assert [k["step"] for k in c["children"]] == ["c1\n", "Answer: 3"]
    (chosen,) = [k for k in c["children"][0]["children"] if k["chosen"]]
    assert chosen == {"step": "Answer: 31", "score": 0.95, "finished": True, "children": [], "chosen": True}


def test_beam_with_min_aggregation_changes_the_choice():
    (sel,) = beam_search(P, ScriptedSampler(BEAM_SCRIPT), TableScorer(BEAM_TABLE),
                         BeamConfig(n=4, beam_width=2, max_steps=5, aggregation="min"))
    # min over steps: c,c1,Answer: 31 -> 0.7; a,Answer: 1 -> 0.5; c,Answer: 3 -> 0.6
    assert sel.answer == "31" and max(sel.scores) == pytest.approx(0.7)


def test_top_k_ties_keep_earlier():
    assert top_k([0.5, 0.7, 0.5, 0.7], 3) == [1, 3, 0]


def test_beam_needs_a_process_scorer_and_valid_widths():
    with pytest.raises(ValueError, match="process scorer"):
        beam_search(P, ScriptedSampler({}), TableScorer({}, kind="outcome"), BeamConfig(n=4, beam_width=2))
    with pytest.raises(ValueError, match="multiple"):
        BeamConfig(n=6, beam_width=4)


# --- DVTS ----------------------------------------------------------------------------------

def test_dvts_subtrees_keep_their_own_best_step():
    script = {"": ["a\n", "b\n", "c\n", "d\n"], "a\n": ["Answer: 1", "Answer: 2"],
              "c\n": ["Answer: 3", "Answer: 4"]}
    table = {"a": 0.9, "b": 0.8, "c": 0.3, "d": 0.1, "Answer: 1": 0.4, "Answer: 2": 0.6, "Answer: 3": 0.7,
             "Answer: 4": 0.2}
    sampler = ScriptedSampler(script)
    (sel,) = dvts(P, sampler, TableScorer(table), DVTSConfig(n=4, beam_width=2, max_steps=4))
    # subtree 1 draws a, b -> keeps a; subtree 2 draws c, d -> keeps c (beam search would keep a and b)
    assert sampler.calls[0][3] == ["", ""] and sampler.calls[0][1] == 2
    assert sampler.calls[1][3] == ["a\n", "c\n"]
    assert sel.answer == "3" and sorted(sel.candidates) == ["a\nAnswer: 1", "a\nAnswer: 2", "c\nAnswer: 3",
                                                            "c\nAnswer: 4"]
    assert sel.budget.model_calls == 8 and sel.budget.scorer_calls == 8


# --- MCTS ----------------------------------------------------------------------------------

def test_uct_by_hand_and_selection_on_a_hand_built_tree():
    assert uct(0.5, 2, 10, 1.0) == pytest.approx(0.5 + math.sqrt(math.log(10) / 2))
    assert uct(0.0, 0, 3, 1.0) == math.inf
    root = Node(Partial(), visits=10)
    # A: Q=0.8 over 8 visits -> 0.8 + sqrt(ln10/8) = 1.3365; B: Q=0.5 over 2 -> 0.5 + sqrt(ln10/2) = 1.5730
    a = Node(Partial("A\n"), parent=root, visits=8, value_sum=6.4)
    b = Node(Partial("B\n"), parent=root, visits=2, value_sum=1.0)
    root.children = [a, b]
    assert select_child(root, 1.0) is b
    assert select_child(root, 0.1) is a  # little exploration: exploit A
    # descent stops at an unexpanded node
    b1 = Node(Partial("B\nb\n"), parent=b, visits=1, value_sum=0.2)
    b.children = [b1]
    assert select_leaf(root, 1.0) is b1
    backup(b1, 1.0)
    assert (b1.visits, b.visits, root.visits) == (2, 3, 11) and b.value_sum == 2.0


def test_mcts_expands_by_uct_and_returns_best_finished_node():
    script = {"": ["a\n", "b\n"], "a\n": ["Answer: 1", "x\n"], "b\n": ["Answer: 2", "Answer: 3"]}
    table = {"a": 0.6, "b": 0.5, "Answer: 1": 0.3, "x": 0.2, "Answer: 2": 0.9, "Answer: 3": 0.1}
    sampler = ScriptedSampler(script)
    (sel,) = mcts(P, sampler, TableScorer(table), MCTSConfig(simulations=3, children=2, c_uct=1.0))
    # sim 0 expands the root: a (0.6), b (0.5); root N=1 (+0.6)
    # sim 1: UCT a = 0.6 + sqrt(ln1/1) = 0.6 > b -> expand a: best child 0.3; a: N=2 W=0.9
    # sim 2: root N=2: a = 0.45 + sqrt(ln2/2) = 1.039, b = 0.5 + sqrt(ln2) = 1.333 -> expand b
    assert [c[3] for c in sampler.calls] == [[""], ["a\n"], ["b\n"]]
    assert sel.answer == "2" and sel.text == "b\nAnswer: 2"
    assert sel.meta["tree_nodes"] == 7 and sel.budget.model_calls == 6 and sel.budget.scorer_calls == 6
    tree = sel.meta["tree"]
    a, b = tree["children"]
    assert tree["visits"] == 3 and (a["step"], a["visits"], a["q"]) == ("a\n", 2, 0.45)
    assert [(k["step"], k["score"], k["chosen"]) for k in b["children"]] == [("Answer: 2", 0.9, True),
                                                                             ("Answer: 3", 0.1, False)]


# --- self-correction ---------------------------------------------------------------------

def test_self_correction_revises_only_when_the_check_fails():
    problems = [Problem(id="ok", prompt="Q1\n", answer="3"), Problem(id="bad", prompt="Q2\n", answer="5")]
    good = "1 + 2 = 3\nAnswer: 3"
    bad = "2 + 2 = 5\nAnswer: 5"

    class ByPrompt(ScriptedSampler):
        def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
            keys = [(prefix or "") + "|" + prompt for prompt, prefix in zip(prompts, prefixes or [""] * len(prompts))]
            return super().generate(prompts, samples_per_prompt, params, keys)

    sampler = ByPrompt({"|Q1\n": [good], "|Q2\n": [bad, "2 + 2 = 4\nAnswer: 4"]})
    scorer = TableScorer({"1 + 2 = 3": 1.0, "Answer: 3": 1.0, "2 + 2 = 5": 0.0, "Answer: 5": 0.0,
                          "2 + 2 = 4": 1.0, "Answer: 4": 1.0})
    ok, fixed = self_correct(problems, sampler, scorer, SelfCorrectConfig(max_revisions=2))
    assert ok.meta["revisions"] == 0 and ok.text == good and ok.candidates == [good]
    # first flagged step is step 0: the revision restarts from the empty prefix
    assert fixed.meta["revisions"] == 1 and fixed.answer == "4" and fixed.meta["passed_check"]
    assert len(sampler.calls) == 2 and sampler.calls[1][0] == ["Q2\n"] and sampler.calls[1][2].temperature > 0
    assert fixed.budget.scorer_calls == 2 and ok.budget.scorer_calls == 1


def test_first_flagged_and_revision_prefix_keeps_trusted_steps():
    assert first_flagged([1.0, 1.0, 0.0], 0.5, outcome=False) == 2
    assert first_flagged([0.2], 0.5, outcome=True) == 0
    sampler = ScriptedSampler({"": ["1 + 1 = 2\n2 + 2 = 5\nAnswer: 5"], "1 + 1 = 2\nWait\n": ["2 + 2 = 4\nAnswer: 4"]})
    scorer = TableScorer({"1 + 1 = 2": 1.0, "2 + 2 = 5": 0.0, "2 + 2 = 4": 1.0, "Answer: 4": 1.0, "Wait": 1.0})
    (sel,) = self_correct(P, sampler, scorer, SelfCorrectConfig(cue="Wait\n"))
    assert sampler.calls[1][3] == ["1 + 1 = 2\nWait\n"] and sel.text.endswith("Answer: 4")


def test_budget_exhaustion_and_validation():
    b = Budget(limit=10)
    assert not b.exhausted
    b.tokens = 10
    assert b.exhausted
    with pytest.raises(ValueError):
        Budget(limit=0)


def test_registry_is_complete():
    assert set(STRATEGIES) == {"greedy", "majority", "best_of_n", "weighted_best_of_n", "beam", "dvts", "mcts",
                               "self_correct", "cosc"}


def test_reward_model_scorer_batches_and_orm_keeps_the_last_score():
    from reasonloop.search.scorers import RewardModelScorer

    class FakeRM:
        def score_steps(self, problem, steps):
            raise AssertionError("score_batch should be used")

        def score_batch(self, prompts, steps):
            return [[0.1 * (i + 1) for i in range(len(s))] for s in steps]

    prm = RewardModelScorer(FakeRM(), "process", "prm")
    orm = RewardModelScorer(FakeRM(), "outcome", "orm")
    assert prm.score(P * 2, [["a", "b"], []]) == [[0.1, 0.2], []]
    assert orm.score(P * 2, [["a", "b", "c"], []]) == [[pytest.approx(0.3)], [0.0]]
