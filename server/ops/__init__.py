"""What the operator sees of one instance: its answers to the admin API, its recent timeline."""
