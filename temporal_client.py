"""Connecting to Temporal the standard way (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS_* or a TEMPORAL_CONFIG_FILE profile), pydantic converter."""

from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig


async def connect(**overrides: Any) -> Client:
    """Lazy: a process starts while Temporal is down, and its calls fail (and are retried)
    until it is back."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", "localhost:7233")
    config.update(overrides)
    config.setdefault("lazy", True)
    return await Client.connect(**config, data_converter=pydantic_data_converter)
