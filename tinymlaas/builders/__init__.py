"""Built-in builder plugins: the board's builder run in its container, or locally."""
