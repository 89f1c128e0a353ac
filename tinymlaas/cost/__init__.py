"""The CFO's area: what inference costs in the cloud, on the device (TinyML) and in the hybrid of
both, from the figures the project measures and documented defaults, each with its source."""
