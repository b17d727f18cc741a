"""Image captioning behind one interface: an offline default and optional real captioners."""
