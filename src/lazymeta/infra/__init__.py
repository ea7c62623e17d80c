"""What every application stands on: config files and overrides, errors, run directories, device and seeds,
distributed meta-batches. Nothing here imports the core or an application."""
