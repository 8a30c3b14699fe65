"""The shipped configuration files (installed as the package `framesieve_config`; see models/shipped.py)."""
