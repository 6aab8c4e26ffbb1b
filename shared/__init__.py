"""Reynolds' domain core: nothing in this package imports ``azure.functions``."""

#: The app's version, deployed with the code (``.funcignore`` drops ``pyproject.toml``); a test keeps it equal to
#: ``[project].version`` there.
__version__ = "0.1.0"
