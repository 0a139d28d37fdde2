"""The pipeline runner and its statistics.

Example:
    >>> from realtime.pipeline import Pipeline
    >>> stats = Pipeline("clip.mp4", mode="blur", output="out.mp4").run()  # doctest: +SKIP
    >>> print(stats.table())  # doctest: +SKIP
"""

from realtime.pipeline.runner import MetadataWriter, Pipeline, Result
from realtime.pipeline.stats import SCHEMA, STAGES, RunStats, summarise

__all__ = ["SCHEMA", "STAGES", "MetadataWriter", "Pipeline", "Result", "RunStats", "summarise"]
