"""Studies: many runs of one experiment as one object (seeds, grid axes, a random or quasi-random search).

- :mod:`workbench.study.definition`: :class:`StudyDefinition` (TOML in and out), :func:`validate_study`
  (one :class:`~workbench.config.Problem` per bad field) and :func:`plan` (the runs, in order);
- :mod:`workbench.study.record`: the study record ``study.json`` beside its runs' session files,
  written crash-safely (see docs/study-format.md);
- :mod:`workbench.study.runner`: :func:`run_study` / :func:`resume_study` on a local process pool or
  on Ray; every run is an ordinary session file written by the store's recorder;
- :mod:`workbench.study.presets`: study presets shipped in ``resources/presets/studies/``;
- :mod:`workbench.study.cli`: ``workbench study run | resume | show | export | list``.

The statistics live in :mod:`workbench.analysis.study`. Qt-free and torch-free (the workers import
torch, the planner and the record never do).
"""

from workbench.study.definition import (PlannedRun, SearchRange, SearchSpec, StudyDefinition, StudyError,
                                        cell_label, count_runs, load_study, needs_confirmation, plan,
                                        study_from_dict, study_from_toml, study_to_toml, validate_study)
from workbench.study.record import RunEntry, StudyRecord, create_record, list_studies, open_record

__all__ = ["StudyDefinition", "SearchSpec", "SearchRange", "PlannedRun", "StudyError", "load_study",
           "study_from_toml", "study_from_dict", "study_to_toml", "validate_study", "needs_confirmation", "plan",
           "count_runs", "cell_label", "StudyRecord", "RunEntry", "create_record", "open_record", "list_studies"]
