"""Built-in compiler plugins (registered through entry points like any other)."""
