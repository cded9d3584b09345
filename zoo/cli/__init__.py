"""The command line (``zoo``): the only part of the package that wires models, guides, inference and reports."""
from zoo.cli.main import main  # noqa: F401
