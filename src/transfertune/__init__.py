"""transfertune: transfer hyperparameter optimisation, five methods side by side."""

__version__ = "0.1.0"
