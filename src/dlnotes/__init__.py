"""dlnotes: executable deep-learning notes.

Each subpackage backs one part of the site (``foundations``, ``vision``, ``attention``,
``ssm``, ``finetune``, ``decoding``, ``distributed``, ``rl``, ``algorithms``); every
chapter imports its code from here, and every snippet is executed by the test suite.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
