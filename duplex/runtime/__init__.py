"""The runtime layer: the TDM engine, sessions, clocks, lanes and metrics."""
