"""The device half of LwM2M: codecs, object definitions, the client and the objects it serves."""
