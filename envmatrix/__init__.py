"""envmatrix: sync secrets from Vault into GitHub Actions environments, rotate them, gate flags."""

__version__ = "0.1.0"
