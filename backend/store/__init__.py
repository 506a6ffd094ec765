"""The store: one DuckDB workspace that holds every dataset row and every result, and how it was made.

* :class:`Workspace` - open, read (``query``, ``array``) and write (``writer``: one process, one
  transaction, waits for readers) a workspace folder;
* :mod:`.queries` - the recurring questions (subjects, current encoder, stimulus order, voxel table);
* :func:`workspace_info` - a summary for the command line and the home page;
* progress reporting shared by long work (``ProgressFn``, ``report``, ``TerminalProgress``).
"""
from .progress import ProgressFn, TerminalProgress, report
from .queries import (current_encoder, default_subject, encoding_key, feature_set_model, has_encoder,
                      require_subject, stimulus_ids, subject_encoders, subjects, voxel_at, voxel_table)
from .summary import workspace_info
from .workspace import (DiskFull, SchemaMismatch, Workspace, WorkspaceBusy, WriteTransaction, code_version,
                        default_workspace, one_connection)

__all__ = ["Workspace", "WriteTransaction", "WorkspaceBusy", "SchemaMismatch", "DiskFull", "default_workspace", "code_version", "one_connection",
           "workspace_info", "subjects", "default_subject", "require_subject", "stimulus_ids", "current_encoder",
           "has_encoder", "voxel_table", "feature_set_model", "voxel_at", "encoding_key", "subject_encoders",
           "ProgressFn", "report", "TerminalProgress"]
