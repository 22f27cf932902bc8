"""CLI commands, one module each; see ``continuum_nb.cli``."""
