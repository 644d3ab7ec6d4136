"""SpectralGPT: a spectral remote-sensing foundation model as a reproducible MLOps system."""

__version__ = "0.1.0"
