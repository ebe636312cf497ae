"""Settings and the composition root, below every entry point and above every adapter."""

from bootstrap.root import (
    ApiParts,
    StreamParts,
    TrainerParts,
    build_api,
    build_stream,
    build_trainer,
    catalog,
    control_store,
    contract_rules,
    exchange_rates,
    feature_params,
    loop_params,
    model_params,
    model_registry,
    require_servers,
    state_store,
)
from bootstrap.settings import Settings, SettingsError, load_settings

__all__ = [
    "ApiParts", "StreamParts", "TrainerParts", "build_api", "build_stream", "build_trainer", "catalog", "control_store",
    "contract_rules", "exchange_rates", "feature_params", "loop_params", "model_params", "model_registry",
    "require_servers", "state_store",
    "Settings", "SettingsError", "load_settings",
]
