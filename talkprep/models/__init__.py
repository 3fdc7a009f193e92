"""Neural networks and model wrappers (MediaPipe solutions, plain-torch networks and loaders)."""
