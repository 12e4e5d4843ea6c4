"""What every process runs on: settings, the Temporal connection, logs, metrics, and the
callback relay."""
