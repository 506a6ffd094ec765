"""The errors VoxelScope raises for mistakes a user can fix (a bad file, an unknown name, a missing step).

Their message is written for the user: it names the file, field or value at fault and what to do.
The command line prints it as it is (``error: <message>``); pages show it in an error box.
"""
from __future__ import annotations

__all__ = ["VoxelScopeError", "NotFoundError", "InvalidInputError"]


class VoxelScopeError(Exception):
    """Base class of the errors whose message is meant for the user."""

    def __str__(self) -> str:  # KeyError-style quoting never applies: the message is shown as written
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class NotFoundError(VoxelScopeError, LookupError):
    """Something named by the user (a subject, voxel, array, bank, encoder, model folder) does not exist."""


class InvalidInputError(VoxelScopeError, ValueError):
    """A value, file or field given by the user is malformed or inconsistent with the rest."""
