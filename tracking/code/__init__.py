"""The team's own code: MLflow projects registered by a team admin, run on the workers
(workers/project_runs.py), and MLflow experiments followed by a project (their runs imported).

- `services`: code_register, code_run_create, code_run_apply, experiment_follow
- `mlproject`: read_mlproject, parameters_validate, entry_point_command (MLflow's loader)
- `mapping`: entry-point parameters <-> DESIGN.md run-config keys
- `sources`: CODE_ROOT checks, git refs resolved and checked out once per commit
- `following`: import the runs of followed experiments (beat task tracking.code.tasks.import_followed)
"""
