"""Reproduce FaceMe's two-stage training, reference-pool construction and evaluation."""
