"""The function-cozyplane benchmark: CPU, latency, throughput and memory against a floor."""
