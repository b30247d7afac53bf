"""Scripts that print the service's figures: `python -m benchmarks.<name> --help`."""
