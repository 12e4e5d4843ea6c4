"""Configuration: defaults are development values, refused anywhere else."""

import pytest
from pydantic import ValidationError

from runtime.settings import DEV_SECRETS, Settings


def test_development_runs_on_the_default_secrets() -> None:
    settings = Settings(env="dev")
    assert settings.jwt_secret == DEV_SECRETS["jwt_secret"]
    assert settings.timings().payment_window_seconds == 86_400


def test_production_refuses_every_default_secret_by_name() -> None:
    with pytest.raises(ValidationError, match="ORDERS_JWT_SECRET") as info:
        Settings(env="prod")
    for name in DEV_SECRETS:
        assert f"ORDERS_{name.upper()}" in str(info.value)


def test_production_starts_once_every_secret_is_set() -> None:
    secrets = {name: f"real-{name}-0123456789abcdef0123456789" for name in DEV_SECRETS}
    settings = Settings(env="prod", **secrets)  # type: ignore[arg-type]
    assert settings.is_dev is False and settings.jwt_secret == secrets["jwt_secret"]


def test_durations_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_PAYMENT_WINDOW_SECONDS", "60")
    monkeypatch.setenv("ORDERS_AUTO_CONFIRM_SECONDS", "120")
    timings = Settings().timings()
    assert (timings.payment_window_seconds, timings.auto_confirm_seconds) == (60, 120)


def test_a_zero_payment_window_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_PAYMENT_WINDOW_SECONDS", "0")
    with pytest.raises(ValidationError, match="payment_window_seconds"):
        Settings()


@pytest.mark.parametrize("weak", ["", "short", "x" * 31])
@pytest.mark.parametrize("name", sorted(DEV_SECRETS))
def test_production_refuses_a_short_or_empty_secret(name: str, weak: str) -> None:
    secrets = {n: f"real-{n}-0123456789abcdef0123456789" for n in DEV_SECRETS} | {name: weak}
    with pytest.raises(ValidationError, match=f"ORDERS_{name.upper()} is shorter than 32 bytes"):
        Settings(env="prod", **secrets)  # type: ignore[arg-type]
    Settings(env="prod", **(secrets | {name: "0123456789" * 4}))  # type: ignore[arg-type]


GOOD = {n: f"real-{n}-0123456789abcdef0123456789" for n in DEV_SECRETS}


@pytest.mark.parametrize(
    ("weak", "why"),
    [
        ("0" * 32, "fewer than 10 distinct characters"),
        (" " * 32, "fewer than 10 distinct characters"),
        ("abcdefghij" * 4 + " ", "whitespace around it"),
        (" abcdefghij0123456789abcdefghij012", "whitespace around it"),
        (DEV_SECRETS["jwt_secret"] + " ", "a development default"),
        ("x" + DEV_SECRETS["payment_webhook_secret"] + "-0123456789abc", "a development default"),
    ],
)
@pytest.mark.parametrize("name", ["jwt_secret", "gateway_api_key"])
def test_production_refuses_a_guessable_secret_naming_it(name: str, weak: str, why: str) -> None:
    with pytest.raises(ValidationError, match=f"ORDERS_{name.upper()} [a-z ]*{why}"):
        Settings(env="prod", **(GOOD | {name: weak}))  # type: ignore[arg-type]


def test_production_refuses_one_secret_for_two_jobs() -> None:
    """A payment partner knowing the JWT secret could mint admin tokens."""
    reused = GOOD | {"payment_webhook_secret": GOOD["jwt_secret"]}
    with pytest.raises(
        ValidationError, match="ORDERS_JWT_SECRET is the same as ORDERS_PAYMENT_WEBHOOK_SECRET"
    ):
        Settings(env="prod", **reused)  # type: ignore[arg-type]
    assert Settings(env="dev", **reused).jwt_secret == GOOD["jwt_secret"]  # type: ignore[arg-type]


def test_the_temporal_deadline_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().temporal_rpc_timeout_seconds == 5.0
    monkeypatch.setenv("ORDERS_TEMPORAL_RPC_TIMEOUT_SECONDS", "2.5")
    assert Settings().temporal_rpc_timeout_seconds == 2.5


@pytest.mark.parametrize("bad", ["0", "0.4", "61", "-1", "soon"])
def test_a_temporal_deadline_out_of_bounds_is_refused(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("ORDERS_TEMPORAL_RPC_TIMEOUT_SECONDS", bad)
    with pytest.raises(ValidationError, match="temporal_rpc_timeout_seconds"):
        Settings()


def test_the_placements_round_never_races_a_start_on_its_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An order is placed, then its workflow started within the API's Temporal deadline: the
    round that closes unstarted placements must wait at least that long."""
    monkeypatch.setenv("ORDERS_TEMPORAL_RPC_TIMEOUT_SECONDS", "30")
    with pytest.raises(ValidationError, match="ORDERS_RECONCILE_PLACEMENTS_GRACE_SECONDS"):
        Settings()
    monkeypatch.setenv("ORDERS_RECONCILE_PLACEMENTS_GRACE_SECONDS", "30")
    assert Settings().reconcile_placements_grace_seconds == 30
