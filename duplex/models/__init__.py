"""The models layer: the DuplexModel protocol, stage protocols and their backends."""
