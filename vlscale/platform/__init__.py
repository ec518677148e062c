"""Everything that runs on the Ray cluster: configs, models, data, training, sweeps, tracking."""
