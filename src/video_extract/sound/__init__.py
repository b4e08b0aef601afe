"""Models of sound that is not (only) speech: CLAP audio-text embeddings."""
