"""The pipeline runner and its statistics.

Example:
    >>> from realtime.pipeline import Pipeline
    >>> stats = Pipeline("clip.mp4", mode="blur", output="out.mp4").run()  # doctest: +SKIP
    >>> print(stats.table())  # doctest: +SKIP
"""

from realtime.pipeline.masker import FrameMasker
from realtime.pipeline.results import MetadataWriter, Result
from realtime.pipeline.runner import Pipeline
from realtime.pipeline.stats import SCHEMA, STAGES, RunStats, summarise

__all__ = ["SCHEMA", "STAGES", "FrameMasker", "MetadataWriter", "Pipeline", "Result", "RunStats", "summarise"]
