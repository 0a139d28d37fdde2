# The TensorRT 11 Python symbols the backend uses (engines/backends/tensorrt_backend.py), for mypy.
# Only APIs present in both TensorRT 10 and 11 appear here; the removed ones (execute_async_v2,
# bindings, build_engine, max_workspace_size, BuilderFlag.FP16/INT8, EXPLICIT_BATCH, ...) do not,
# so a call to one fails the type check.
from collections.abc import Sequence
from enum import IntEnum

__version__: str

class Logger:
    class Severity(IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4
    INTERNAL_ERROR = Severity.INTERNAL_ERROR
    ERROR = Severity.ERROR
    WARNING = Severity.WARNING
    INFO = Severity.INFO
    VERBOSE = Severity.VERBOSE
    def __init__(self, min_severity: Logger.Severity = ...) -> None: ...

class NetworkDefinitionCreationFlag(IntEnum):
    STRONGLY_TYPED = 1
    PREFER_JIT_PYTHON_PLUGINS = 2
    PREFER_AOT_PYTHON_PLUGINS = 3

class MemoryPoolType(IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4
    TACTIC_SHARED_MEMORY = 5

class DataType(IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9

class TensorIOMode(IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2

class Dims(Sequence[int]):
    def __getitem__(self, index: int) -> int: ...  # type: ignore[override]
    def __len__(self) -> int: ...

class ITensor:
    name: str
    shape: Dims
    dtype: DataType

class INetworkDefinition:
    num_inputs: int
    num_outputs: int
    def get_input(self, index: int) -> ITensor: ...
    def get_output(self, index: int) -> ITensor: ...

class IParserError:
    def desc(self) -> str: ...
    def node(self) -> int: ...

class OnnxParser:
    num_errors: int
    def __init__(self, network: INetworkDefinition, logger: Logger) -> None: ...
    def parse(self, model: bytes, path: str | None = None) -> bool: ...
    def parse_from_file(self, model: str) -> bool: ...
    def get_error(self, index: int) -> IParserError: ...

class IOptimizationProfile:
    def set_shape(self, input: str, min: Sequence[int], opt: Sequence[int], max: Sequence[int]) -> None: ...

class ITimingCache:
    def serialize(self) -> memoryview: ...

class IHostMemory:
    def __buffer__(self, flags: int) -> memoryview: ...

class IBuilderConfig:
    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None: ...
    def add_optimization_profile(self, profile: IOptimizationProfile) -> int: ...
    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache: ...
    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool: ...
    def get_timing_cache(self) -> ITimingCache: ...

class Builder:
    def __init__(self, logger: Logger) -> None: ...
    def create_network(self, flags: int = 0) -> INetworkDefinition: ...
    def create_builder_config(self) -> IBuilderConfig: ...
    def create_optimization_profile(self) -> IOptimizationProfile: ...
    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None: ...

class IExecutionContext:
    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool: ...
    def get_tensor_shape(self, name: str) -> Dims: ...
    def set_tensor_address(self, name: str, memory: int) -> bool: ...
    def execute_async_v3(self, stream_handle: int) -> bool: ...

class ICudaEngine:
    num_io_tensors: int
    def get_tensor_name(self, index: int) -> str: ...
    def get_tensor_mode(self, name: str) -> TensorIOMode: ...
    def get_tensor_dtype(self, name: str) -> DataType: ...
    def get_tensor_shape(self, name: str) -> Dims: ...
    def create_execution_context(self) -> IExecutionContext | None: ...

class Runtime:
    def __init__(self, logger: Logger) -> None: ...
    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None: ...
