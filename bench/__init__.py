"""``make bench``: hookstream's throughput, latency, isolation, fan-out and startup, measured
side by side with a bare Faust baseline on the same broker in the same run."""
