"""Benchmarks: latency per stage, throughput, soak (memory and drift)."""
