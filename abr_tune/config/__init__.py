"""The train config: its schema (`schema`), loading and overrides (`loading`), checks (`validate`)."""

from .loading import (
    all_keys,
    apply_overrides,
    config_from_raw,
    diff,
    from_dict,
    get_key,
    load_config,
    load_yaml,
    parse_overrides,
    unknown_key_message,
)
from .schema import (
    SEQUENCE_LENGTH,
    STATIC_NAMES,
    AdvancedConfig,
    DataConfig,
    DiffusionConfig,
    LoaderConfig,
    LoggingConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    ReproducibilityConfig,
    StftConfig,
    SyntheticConfig,
    TrainConfig,
    TrainerConfig,
    VizConfig,
)

__all__ = [
    "SEQUENCE_LENGTH", "STATIC_NAMES", "AdvancedConfig", "DataConfig", "DiffusionConfig", "LoaderConfig",
    "LoggingConfig", "LossConfig", "ModelConfig", "OptimConfig", "ReproducibilityConfig", "StftConfig",
    "SyntheticConfig", "TrainConfig", "TrainerConfig",
    "VizConfig", "all_keys", "apply_overrides", "config_from_raw", "diff", "from_dict", "get_key", "load_config",
    "load_yaml", "parse_overrides", "unknown_key_message",
]
