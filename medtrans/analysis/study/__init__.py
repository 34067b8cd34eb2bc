"""A study: many runs (configs x seeds) placed in the cells of result tables, planned as a
graph of jobs (pretrainings before the cells that read their exports), run side by side on one
machine, written as a cluster script or submitted to Slurm, resumable, and read back for the
summaries.

Layers, each importing only those before it: :mod:`.spec` (the spec file, its runs and
filters), :mod:`.recipe` (a config's GPUs x batch, and how a job reaches its total batch),
:mod:`.record` (the records and results a run leaves), :mod:`.plan` (the jobs as data, with
their commands), then the backends :mod:`.local` (this machine), :mod:`.scripts` (a bash
script for a cluster node, torchrun) and :mod:`.slurm` (``sbatch``: job arrays with
dependencies, requeued on preemption).
"""
from .local import StudyOutcome, missing_inputs, run_study
from .plan import SMOKE, Job, Plan, Step, build_plan, job_status
from .recipe import Placement, Recipe, place_recipe, read_recipe
from .record import PRETRAINING_RECORD, RUN_RECORD, versions
from .scripts import cluster_script
from .slurm import SlurmError, SlurmOptions, submit_plan
from .spec import Pretraining, Study, StudyRun, load_study, parse_only, select_runs

__all__ = [
    'StudyRun', 'Pretraining', 'Study', 'load_study', 'parse_only', 'select_runs', 'Recipe',
    'Placement', 'read_recipe', 'place_recipe', 'RUN_RECORD', 'PRETRAINING_RECORD', 'versions',
    'SMOKE', 'Step', 'Job', 'Plan', 'build_plan', 'job_status', 'run_study', 'StudyOutcome',
    'missing_inputs', 'cluster_script', 'SlurmOptions', 'SlurmError', 'submit_plan'
]
