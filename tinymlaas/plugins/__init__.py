"""Plugin contracts (base) and their discovery through entry points (registry)."""
