"""Built-in emulator plugins: run board firmware without the board."""
