"""lit-video: a PyTorch Lightning experiment suite for video understanding."""

__version__ = "0.1.0"
