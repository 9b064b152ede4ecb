"""The pipeline behind ``zprime run``: the stage table and running it (``stages``), caching
(``cache``) and the engine's own stages (``samples``). The run-directory layout is
:class:`zprime.io.rundir.RunDir`; executors are :mod:`zprime.parallel`."""

from zprime.pipeline.stages import (
    Stage,
    check_inputs,
    quick_config,
    run,
    run_stage,
    stage_table,
)

__all__ = ["Stage", "check_inputs", "quick_config", "run", "run_stage", "stage_table"]
