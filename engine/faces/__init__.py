"""Face analysis: detection, landmarks, embeddings (per model), alignment and its inverse."""
