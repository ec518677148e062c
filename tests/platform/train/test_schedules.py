import pytest

from vlscale.platform.train.schedules import cooldown_branches, cooldown_lr, constant_lr, cosine_lr


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
