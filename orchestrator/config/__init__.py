"""What an operator sets: runtime settings, where things live, reference prices.

The bottom layer with :mod:`orchestrator.errors`: it imports nothing else of the package.
"""

from orchestrator.config.settings import Settings, default_skills_dir

__all__ = ["Settings", "default_skills_dir"]
