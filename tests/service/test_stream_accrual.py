from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from trickle.streaming.accrual import HOUR_MS, Accrual


def test_an_hour_at_the_default_rate_pays_the_rate_exactly() -> None:
    accrual = Accrual()
    paid = 0
    for _ in range(1800):  # 2 s intervals for one hour
        accrual.add(600_000_000, 2000, share=1)
        paid += accrual.take()
    assert paid == 600_000_000 and accrual.pending == 0


def test_the_remainder_is_carried_not_lost() -> None:
    accrual = Accrual()
    amounts = []
    for _ in range(3):
        accrual.add(1, HOUR_MS // 3, share=1)  # a third of a unit each time
        amounts.append(accrual.take())
    assert amounts == [0, 0, 1]


def test_sharing_divides_the_rate() -> None:
    one, two = Accrual(), Accrual()
    for _ in range(1000):
        one.add(600_000_000, 1000, share=2)
        two.add(600_000_000, 1000, share=2)
    assert one.take() + two.take() == 600_000_000 * 1000 * 1000 // HOUR_MS


@given(
    rate=st.integers(min_value=0, max_value=10**12),
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=8)
        ),
        max_size=60,
    ),
)
def test_paid_plus_pending_is_exactly_rate_times_time(
    rate: int, steps: list[tuple[int, int]]
) -> None:
    accrual = Accrual()
    paid = 0
    for elapsed_ms, share in steps:
        accrual.add(rate, elapsed_ms, share)
        paid += accrual.take()
        assert 0 <= accrual.pending < 1
    exact = sum(Fraction(rate * elapsed_ms, HOUR_MS * share) for elapsed_ms, share in steps)
    assert paid + accrual.pending == exact


def test_thousands_of_share_changes_stay_exact() -> None:
    """Shares 1..512 (every stream a reader may have) in turn: the common denominator grows
    past the point where the carried fraction is reduced, and it stays exact."""
    import random

    rng = random.Random(7)
    accrual, paid, exact = Accrual(), 0, Fraction(0)
    for _ in range(5000):
        elapsed_ms, share = rng.randint(1, 5000), rng.randint(1, 512)
        accrual.add(777_777, elapsed_ms, share)
        exact += Fraction(777_777 * elapsed_ms, HOUR_MS * share)
        paid += accrual.take()
        assert 0 <= accrual.pending < 1
    assert paid + accrual.pending == exact
