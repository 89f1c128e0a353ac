"""Device-side code: what runs on (emulated) boards, not in the service."""
