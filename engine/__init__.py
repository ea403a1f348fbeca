"""FaceMe Studio's engine: the whole restoration pipeline as a Qt-free library."""

__version__ = "0.1.0"
