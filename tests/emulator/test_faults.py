"""Fault injection."""

from __future__ import annotations

from revoker.emulator.faults import SERVER_ERRORS, FaultInjector


def test_fault_injector_is_deterministic_with_a_seed() -> None:
    def draws(seed: int) -> list[str | None]:
        inj = FaultInjector(reset_rate=0.2, error_rate=0.2, throttle_rate=0.2, seed=seed)
        return [f.kind if f else None for f in (inj.draw() for _ in range(50))]

    assert draws(7) == draws(7)
    assert set(draws(7)) == {None, "reset", "error", "throttle"}


def test_fault_injector_without_rates_never_faults() -> None:
    inj = FaultInjector(reset_rate=0, error_rate=0, throttle_rate=0, seed=None)
    assert all(inj.draw() is None for _ in range(1000))


def test_error_faults_use_documented_statuses() -> None:
    inj = FaultInjector(reset_rate=0, error_rate=1, throttle_rate=0, seed=3)
    faults = [inj.draw() for _ in range(100)]
    assert {(f.status, f.message) for f in faults if f} == set(SERVER_ERRORS)
