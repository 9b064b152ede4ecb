"""The pipeline behind ``zprime run``: the stage table, caching, the run-directory layout and
executors (``stages``)."""

from zprime.pipeline.stages import STAGES, RunContext, quick_config, run, run_stage, xsec_summary

__all__ = ["STAGES", "RunContext", "quick_config", "run", "run_stage", "xsec_summary"]
