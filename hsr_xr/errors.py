"""Exceptions raised on bad input.

Every input problem raises :class:`ValidationError`, a :class:`ValueError`
subclass whose message names the offending variable, states the problem and
says how to fix it.
"""

from __future__ import annotations


class ValidationError(ValueError):
    """Bad input: names the variable, the problem and the fix.

    Attributes
    ----------
    variable : str
        Name of the offending variable, coordinate or argument.
    problem : str
        What is wrong.
    fix : str
        What the caller should do about it.
    """

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        self.variable = variable
        self.problem = problem
        self.fix = fix
        super().__init__(f"{variable!r}: {problem}. Fix: {fix}")

    def __reduce__(self):  # pickles whole (e.g. from a Dask worker process)
        return type(self), (self.variable, self.problem, self.fix)


class IncompleteStoreError(ValidationError):
    """A Zarr store whose last write did not finish; it must not be read as valid."""
