"""All configuration, read once from the environment (`ORDERS_` prefix) — SPEC §11."""

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.models import OrderTimings

DEV_SECRETS = {
    "jwt_secret": "dev-jwt-secret-change-me-0123456789",
    "payment_webhook_secret": "dev-payment-secret",
    "carrier_webhook_secret": "dev-carrier-secret",
    "supplier_webhook_secret": "dev-supplier-secret",
    "gateway_api_key": "dev-gateway-key",
    "supplier_api_key": "dev-supplier-key",
}


MIN_SECRET_BYTES = 32  # outside dev: an empty or guessable secret never starts the service
MIN_SECRET_CHARS = 10  # distinct characters: "0" * 32 is long, not secret


def secret_problems(secrets: dict[str, str]) -> list[str]:
    """What is wrong with each secret, naming its variable: too short, too few distinct
    characters, whitespace around it, a development default in it (with anything around
    it), or the same as another secret (a payment partner knowing the JWT secret could
    mint admin tokens)."""
    problems: list[str] = []
    for name, value in secrets.items():
        var = f"ORDERS_{name.upper()}"
        if value != value.strip():
            problems.append(f"{var} has whitespace around it")
        if len(value.encode()) < MIN_SECRET_BYTES:
            problems.append(f"{var} is shorter than {MIN_SECRET_BYTES} bytes")
        if len(set(value)) < MIN_SECRET_CHARS:
            problems.append(f"{var} has fewer than {MIN_SECRET_CHARS} distinct characters")
        if any(default in value for default in DEV_SECRETS.values()):
            problems.append(f"{var} holds a development default")
        same = [other for other, v in secrets.items() if other != name and v == value]
        if same:
            problems.append(f"{var} is the same as ORDERS_{same[0].upper()}")
    return problems


# an order's durations: their defaults are OrderTimings' own (one place)
_T = OrderTimings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_", extra="ignore")

    env: str = "dev"
    database_url: str = "sqlite+aiosqlite:///.data/orders.db"
    task_queue: str = "orders"
    api_public_url: str = "http://127.0.0.1:8000"
    temporal_ui_url: str = "http://127.0.0.1:8233"  # the console links each order to it

    jwt_secret: str = DEV_SECRETS["jwt_secret"]
    payment_webhook_secret: str = DEV_SECRETS["payment_webhook_secret"]
    carrier_webhook_secret: str = DEV_SECRETS["carrier_webhook_secret"]
    supplier_webhook_secret: str = DEV_SECRETS["supplier_webhook_secret"]
    gateway_url: str = "http://127.0.0.1:8010"
    gateway_api_key: str = DEV_SECRETS["gateway_api_key"]
    supplier_url: str = "http://127.0.0.1:8020"
    supplier_api_key: str = DEV_SECRETS["supplier_api_key"]

    payment_window_seconds: int = Field(_T.payment_window_seconds, ge=1)
    supplier_cancel_window_seconds: int = Field(_T.supplier_cancel_window_seconds, ge=0)
    auto_confirm_seconds: int = Field(_T.auto_confirm_seconds, ge=1)
    receipt_extension_seconds: int = Field(_T.receipt_extension_seconds, ge=1)
    refund_response_seconds: int = Field(_T.refund_response_seconds, ge=1)
    after_sales_window_seconds: int = Field(_T.after_sales_window_seconds, ge=0)
    return_ship_seconds: int = Field(_T.return_ship_seconds, ge=1)
    return_receive_seconds: int = Field(_T.return_receive_seconds, ge=1)
    escalate_seconds: int = Field(_T.escalate_seconds, ge=1)
    reship_seconds: int = Field(_T.reship_seconds, ge=1)  # an exchange's replacement ships
    service_phone: str = Field("400-606-5500", max_length=32)  # on every after-sales case
    blob_dir: str = ".data/blobs"  # evidence images, by sha256

    metrics_bind: str = ""  # the worker's Prometheus endpoint, e.g. 127.0.0.1:9464 (off: "")
    workflow_sandbox: bool = False  # the tests turn it on: any non-deterministic call fails
    # how long a partner's callback waits for Temporal before it is answered "queued" and
    # left to the relay (tests without a relay loop wait longer)
    relay_sender_patience_seconds: float = Field(2.0, gt=0, le=60)
    # every call from the API (actions, partner callbacks) to Temporal answers within this:
    # past it an action is a 503 TEMPORAL_UNAVAILABLE, a callback is left "queued"
    temporal_rpc_timeout_seconds: float = Field(5.0, ge=0.5, le=60)
    relay_every_seconds: float = Field(2.0, gt=0, le=300)  # the callback relay's round
    reconcile_every_seconds: int = Field(300, ge=10)  # the reconciliation schedule
    reconcile_grace_seconds: int = Field(120, ge=0)  # younger orders are left alone
    # placements whose workflow never started: looked for every this often, among the orders
    # placed in the last quarter hour and older than the grace (longer than the API's own
    # deadline for starting a workflow, so a start on its way is never raced)
    reconcile_placements_every_seconds: int = Field(30, ge=5, le=3600)
    reconcile_placements_grace_seconds: int = Field(20, ge=0, le=3600)

    # a bearer token living longer than this from now is refused; issuer and audience, when
    # set, are required in every token and checked
    token_max_ttl_seconds: int = Field(30 * 86_400, ge=60, le=365 * 86_400)
    jwt_issuer: str | None = Field(None, min_length=1, max_length=200)
    jwt_audience: str | None = Field(None, min_length=1, max_length=200)

    # a console session ends after this long unused (and with the token it was opened with)
    console_session_seconds: int = Field(12 * 3600, ge=60, le=30 * 86_400)
    # the console's navigation counts orders paid longer ago than this and not shipped
    console_unshipped_hours: int = Field(24, ge=1, le=24 * 366)

    max_unpaid_orders: int = Field(20, ge=1, le=1000)  # per buyer; the next placement is 429
    public_docs: bool = False  # outside dev, /docs and /openapi.json only when this is set

    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_upload_bytes: int = Field(48 * 1_048_576, ge=1024)  # an after-sales case's images
    # evidence images one buyer's cases may hold at once (the next case's are 429)
    max_image_bytes_per_buyer: int = Field(200 * 1_048_576, ge=0, le=10**12)
    # images of a case withdrawn or closed without a refund are deleted this long after it
    # ended; those of a case that never opened (refused) an hour after their upload
    ended_case_images_days: int = Field(7, ge=0, le=3650)
    image_purge_every_seconds: int = Field(3600, ge=0)  # 0: the API never purges by itself

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> "Settings":
        if not self.is_dev:
            problems = secret_problems({k: getattr(self, k) for k in DEV_SECRETS})
            if problems:
                raise ValueError(
                    f"ORDERS_ENV={self.env} refuses weak secrets: " + "; ".join(problems)
                )
        return self

    @model_validator(mode="after")
    def _placements_grace_past_the_start(self) -> "Settings":
        if self.reconcile_placements_grace_seconds < self.temporal_rpc_timeout_seconds:
            raise ValueError(
                "ORDERS_RECONCILE_PLACEMENTS_GRACE_SECONDS must be at least "
                "ORDERS_TEMPORAL_RPC_TIMEOUT_SECONDS: a workflow the API is starting is "
                "not a lost one"
            )
        return self

    def timings(self) -> OrderTimings:
        """The durations new orders get: the settings of the same names."""
        return OrderTimings(**{name: getattr(self, name) for name in OrderTimings.model_fields})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
