"""ProblemCursor: epochs with a seeded shuffle, exact resume, procedural tasks walked in order."""

import json

import pytest

from reasonloop.tasks import make_task
from reasonloop.tasks.cursor import CursorStateError, ProblemCursor, epoch_order, subset_indices


class Rows:
    """A finite task of `n` problems (the cursor only needs len, [] and `finite`)."""

    finite = True
    name = "rows"

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return f"row{i}"


def test_every_epoch_visits_each_problem_once_in_a_new_seeded_order():
    cursor = ProblemCursor(Rows(7), seed=3)
    epochs = [cursor.take_indices(7) for _ in range(3)]
    assert all(sorted(e) == list(range(7)) for e in epochs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]  # reshuffled per epoch
    assert epochs[0] == epoch_order(7, 3, 0) and epochs[2] == epoch_order(7, 3, 2)
    assert cursor.epoch == 2 and cursor.position == 7 and cursor.consumed == 21 and cursor.epochs == 3.0
    # the same seed gives the same orders, another seed others
    assert ProblemCursor(Rows(7), seed=3).take_indices(21) == [i for e in epochs for i in e]
    assert ProblemCursor(Rows(7), seed=4).take_indices(7) != epochs[0]


def test_a_batch_crossing_the_epoch_boundary():
    cursor = ProblemCursor(Rows(5), seed=0)
    first = cursor.take(3)
    second = cursor.take(4)  # two from epoch 0, two from epoch 1
    order0, order1 = epoch_order(5, 0, 0), epoch_order(5, 0, 1)
    assert first + second == [f"row{i}" for i in order0 + order1[:2]]
    assert (cursor.epoch, cursor.position) == (1, 2)


@pytest.mark.parametrize("stop", [0, 1, 4, 5, 6, 13])
def test_resume_from_state_dict_continues_exactly(stop):
    reference = ProblemCursor(Rows(5), seed=9).take_indices(20)
    cursor = ProblemCursor(Rows(5), seed=9)
    head = cursor.take_indices(stop)
    state = json.loads(json.dumps(cursor.state_dict()))  # it goes through a JSON run state
    resumed = ProblemCursor(Rows(5), seed=9)
    resumed.load_state_dict(state)
    assert head + resumed.take_indices(20 - stop) == reference
    assert ProblemCursor.from_state(Rows(5), state).take_indices(20 - stop) == reference[stop:]


def test_state_of_another_dataset_or_seed_is_refused():
    state = ProblemCursor(Rows(5), seed=1).state_dict()
    with pytest.raises(CursorStateError, match="walked 5 problems but the task now has 6"):
        ProblemCursor(Rows(6), seed=1).load_state_dict(state)
    with pytest.raises(CursorStateError, match="seed=1"):
        ProblemCursor(Rows(5), seed=2).load_state_dict(state)
    with pytest.raises(CursorStateError, match="lacks"):
        ProblemCursor(Rows(5), seed=1).load_state_dict({"size": 5})


def test_procedural_task_is_walked_in_order_without_a_permutation():
    task = make_task("arithmetic", split="train", size=10_000_000, seed=0)
    cursor = ProblemCursor(task, seed=0)
    assert not cursor.shuffle
    assert [p.id for p in cursor.take(3)] == [task[i].id for i in range(3)]
    assert cursor._order is None  # nothing of size 10^7 was built
    assert ProblemCursor(task, seed=0, shuffle=True).shuffle  # explicit override


def test_procedural_wraps_into_the_next_epoch():
    task = make_task("arithmetic", split="train", size=3, seed=0)
    assert ProblemCursor(task).take_indices(7) == [0, 1, 2, 0, 1, 2, 0]


def test_subset_indices():
    assert subset_indices(5, None, seed=0) == [0, 1, 2, 3, 4]
    assert subset_indices(5, 9, seed=0) == [0, 1, 2, 3, 4]
    sub = subset_indices(100, 10, seed=2)
    assert len(set(sub)) == 10 and sub == sorted(sub) and sub != list(range(10))
    assert sub == sorted(epoch_order(100, 2, 0)[:10])


def test_empty_task_is_an_error():
    with pytest.raises(ValueError, match="no problems"):
        ProblemCursor(Rows(0))


def test_seek_stands_where_drawing_would():
    for consumed in (0, 3, 5, 12):
        drawn = ProblemCursor(Rows(5), seed=1)
        drawn.take_indices(consumed)
        sought = ProblemCursor(Rows(5), seed=1)
        sought.seek(consumed)
        assert sought.state_dict() == drawn.state_dict() and sought.take_indices(6) == drawn.take_indices(6)
