"""Use cases: plain synchronous functions, no FastAPI and no CLI in here."""
