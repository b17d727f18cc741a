"""Vision networks written in plain torch."""
