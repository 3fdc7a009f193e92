"""Camera and pose math, face-mesh topology and index maps, the tracking solver, rasterisation."""
