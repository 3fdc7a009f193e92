"""File I/O at the edges: video and audio decoding, atomic writers, image codecs."""
