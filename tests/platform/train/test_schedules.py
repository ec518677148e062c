import pytest

from vlscale.platform.config import TrainSpec
from vlscale.platform.train.schedules import constant_lr, cooldown_branches, cooldown_lr, cosine_lr
from vlscale.platform.train.segments import learning_rate, plan_segments, samples_processed


def test_cosine_warms_up_then_decays_to_zero():
    kwargs = dict(peak_lr=1.0, warmup_samples=100, total_samples=1000)
    assert cosine_lr(0, **kwargs) == pytest.approx(0.01)
    assert cosine_lr(99, **kwargs) == pytest.approx(1.0)
    assert cosine_lr(100, **kwargs) == pytest.approx(1.0)
    assert cosine_lr(550, **kwargs) == pytest.approx(0.5)
    assert cosine_lr(1000, **kwargs) == pytest.approx(0.0)
    values = [cosine_lr(s, **kwargs) for s in range(100, 1001, 50)]
    assert values == sorted(values, reverse=True)


def test_constant_and_cooldown():
    assert constant_lr(5000, peak_lr=0.1, warmup_samples=100) == 0.1
    assert cooldown_lr(800, peak_lr=0.1, start=800, end=1000) == pytest.approx(0.1)
    assert cooldown_lr(900, peak_lr=0.1, start=800, end=1000) == pytest.approx(0.05)
    assert cooldown_lr(1000, peak_lr=0.1, start=800, end=1000) == 0.0


def test_branches_start_on_batch_boundaries_and_end_at_points():
    branches = cooldown_branches((4000, 1000), 0.2, 64)
    assert [b.end for b in branches] == [1000, 4000]
    assert all(b.start % 64 == 0 and b.start <= 0.8 * b.end for b in branches)
    assert branches[0].start == 768



def test_cosine_plan_is_one_evaluated_segment():
    segments = plan_segments(TrainSpec(samples_seen=1000, global_batch=10, lr=1.0))
    assert len(segments) == 1 and segments[0].evaluate and not segments[0].cooldown


def test_constant_plan_branches_off_the_main_line():
    train = TrainSpec(samples_seen=4000, global_batch=100, lr=1.0, schedule="const",
                      eval_points=(1000, 2000, 4000), cooldown_fraction=0.2)
    segments = plan_segments(train)
    assert [(s.start, s.end, s.cooldown) for s in segments] == [
        (0, 800, False), (800, 1000, True), (800, 1600, False), (1600, 2000, True),
        (1600, 3200, False), (3200, 4000, True)]
    assert samples_processed(segments) == 3200 + 200 + 400 + 800
    branch = segments[1]
    assert learning_rate(train, branch, 900) == pytest.approx(0.5)
    assert learning_rate(train, segments[0], 500) == 1.0
