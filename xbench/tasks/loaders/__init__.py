"""Loaders turn a task spec and its verified data folder into `TaskData`; one function per data format.

Importing the package registers every built-in loader (each module decorates its function with `register`).
"""

from xbench.tasks.loaders import exams, lareqa, miracl, parallel
from xbench.tasks.loaders.base import LOADERS, PART_LOADERS, Loader, PartLoader, register, register_parts

__all__ = ["LOADERS", "PART_LOADERS", "Loader", "PartLoader", "exams", "lareqa", "miracl", "parallel", "register",
           "register_parts"]
