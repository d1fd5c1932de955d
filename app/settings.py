"""Every setting of hookstream, read once from the environment (prefix ``HOOKSTREAM_``).

Modules never read ``os.environ`` themselves: they take a :class:`Settings` (usually
:func:`get_settings`). Child processes (workers started by tests or ``make run``) inherit
their settings through the same environment variables.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_BROKER = "kafka://127.0.0.1:9092"


class Settings(BaseSettings):
    """Runtime configuration of a hookstream process."""

    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_", frozen=True, extra="ignore")

    broker: str = Field(
        DEFAULT_BROKER,
        description="Kafka bootstrap server(s), e.g. kafka://127.0.0.1:9092.",
    )
    topic_prefix: str = Field("hookstream.", description="Prefix of every hookstream topic name.")
    app_id: str = Field(
        "hookstream",
        description="Faust app id, which is also the consumer group of the workers.",
    )
    retry_delays: Annotated[tuple[float, ...], NoDecode] = Field(
        (10.0, 60.0, 300.0),
        description="Comma-separated seconds; one retry tier (topic) per delay.",
    )
    retry_all_non_2xx: bool = Field(
        True,
        description="Retry every non-2xx (seed 001); false: 4xx other than 408/429 fail at once.",
    )
    retry_jitter: float = Field(
        0.1, ge=0, le=1, description="Up to this fraction is added to each retry delay."
    )
    auto_disable_after: float = Field(
        86400.0,
        ge=0,
        description="Disable a webhook whose every delivery failed this long (s); 0: never.",
    )
    secret_rotation_grace: float = Field(
        86400.0,
        ge=0,
        description="Seconds a replaced signing secret keeps signing too (two signatures).",
    )
    request_timeout: float = Field(10.0, gt=0, description="Seconds for one HTTP delivery attempt.")
    allow_http: bool = Field(False, description="Allow plain http:// webhook URLs.")
    allow_private_networks: bool = Field(
        False,
        description="Allow webhook URLs on loopback, private, link-local and metadata addresses.",
    )
    partitions: int = Field(
        2,
        ge=1,
        description="Partitions of every topic hookstream creates: at least the number of "
        "workers. 2 is for local use on the embedded broker (why: README, Performance).",
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    broker_session_timeout: float = Field(
        10.0,
        gt=0,
        description="Consumer session timeout in seconds; short, so a restarted worker is fast.",
    )
    commit_interval: float = Field(
        2.8,
        gt=0,
        description="Seconds between offset commits (Faust's default). A commit moves each "
        "input partition to its lowest unsettled record; shorter commits re-send less after "
        "a crash and cost a broker round trip each.",
    )
    delivery_concurrency: int = Field(
        200, ge=1, description="Events (batches of jobs) one worker delivers at the same time."
    )
    endpoint_max_in_flight: int = Field(
        256,
        ge=1,
        description="Most requests in flight to one endpoint (webhook URL); its adaptive limit "
        "moves between the minimum and this.",
    )
    endpoint_min_in_flight: int = Field(
        1, ge=1, description="Fewest requests in flight an endpoint's adaptive limit falls to."
    )
    max_in_flight: int = Field(
        1024, ge=1, description="Requests in flight in the whole worker, shared round robin."
    )
    endpoint_queue_seconds: float = Field(
        5.0,
        gt=0,
        description="Longest a job waits in memory for its endpoint; one that would wait "
        "longer is parked on deliveries.parked (a queued job holds its event's offset).",
    )
    max_queued: int = Field(
        20_000,
        ge=1,
        description="Jobs a worker holds in memory, waiting for their endpoints; at this many "
        "it reads no more events until some are sent.",
    )
    parked_in_memory: int = Field(
        20_000,
        ge=1,
        description="Parked jobs a worker holds in memory until they are due; beyond that "
        "they stay on the broker.",
    )
    circuit_failure_threshold: int = Field(
        5, ge=1, description="Consecutive failures that open an endpoint's circuit."
    )
    circuit_cooldown: float = Field(
        30.0, gt=0, description="Seconds an open circuit skips requests before one probe."
    )
    consumer_fetch_max_wait_ms: int = Field(
        20,
        ge=1,
        description="How long a fetch may wait for data; Faust's fixed 1500 ms adds latency.",
    )
    producer_linger_ms: int = Field(
        5, ge=0, description="Producer linger; one-record batches are costly for the broker."
    )
    batch_linger_ms: int = Field(
        50,
        ge=0,
        description="How long attempt and retry records gather into a batch before it is "
        "sent; every batch is written before an offset commit.",
    )
    ssl: bool = Field(False, description="Connect to the brokers over TLS (system CAs by default).")
    ssl_ca_file: str | None = Field(None, description="CA bundle for the brokers' certificates.")
    ssl_cert_file: str | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_key_file: str | None = Field(None, description="Client certificate's private key.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism; unset = no SASL."
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    data_dir: str = Field(
        "hookstream-data", description="Faust's state directory (hookstream keeps no tables)."
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin API; unset = the admin API refuses all."
    )
    tracking_secret: SecretStr | None = Field(
        None,
        description="Key that signs x-hookstream-token feedback tokens; the same on every worker.",
    )
    portal_secret: SecretStr | None = Field(
        None,
        description="Key that signs portal links (one account each); unset = no portal links.",
    )
    public_url: str | None = Field(
        None,
        description="The worker's address as browsers reach it, for portal links (default: the "
        "scheme and host the link was asked for on).",
    )
    tracking_token_ttl: float = Field(
        30 * 24 * 3600.0, gt=0, description="Seconds a feedback token stays valid."
    )
    log_scan_records: int = Field(
        100_000,
        ge=100,
        description="How many of the newest records per partition the attempt log and "
        "dead-letter listings read.",
    )
    web_host: str = Field("127.0.0.1", description="Address the worker's web server binds to.")
    kafka_home: str | None = Field(
        None,
        description="Where `hookstream broker --engine kafka` keeps Apache Kafka's jars "
        "(default ~/.cache/hookstream/kafka-4.4.0).",
    )
    kafka_jvm_opts: str | None = Field(
        None, description="JVM options of the local Apache Kafka broker (replaces the defaults)."
    )

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _parse_delays(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            return tuple(float(p) for p in parts)
        return value

    @field_validator("retry_delays")
    @classmethod
    def _check_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(d < 0 for d in value):
            raise ValueError("retry delays must be >= 0 seconds")
        return value

    @property
    def uses_tls(self) -> bool:
        return self.ssl or any((self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file))

    @property
    def bootstrap_servers(self) -> list[str]:
        """The broker URL(s) as host:port strings for aiokafka clients."""
        servers = []
        for part in self.broker.split(";") if ";" in self.broker else self.broker.split(","):
            part = part.strip()
            if "://" in part:
                part = part.split("://", 1)[1]
            if part:
                servers.append(part)
        return servers


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
