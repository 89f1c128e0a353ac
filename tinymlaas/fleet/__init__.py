"""The operator's fleet: device registry, bridges, groups, rollouts, run-time toolchains."""
