"""ESP-MedSAM for espnode: the network, ONNX export, parity fixtures and a benchmark.

The implementation follows the ESP-MedSAM paper's architecture and is checkpoint-compatible
with the published per-dataset weights (strict state-dict load; tests/data lists their names
and shapes).
"""

from .config import ModelConfig, preset, PRESETS  # noqa: F401
from .model import ESPMedSAM, build_model  # noqa: F401

__version__ = "0.1.0"
