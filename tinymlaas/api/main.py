"""App factory: state is made in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tinymlaas import __version__
from tinymlaas.api import handlers
from tinymlaas.api.routes import artifacts, builds, catalog, jobs, models
from tinymlaas.config import Settings
from tinymlaas.jobs import JobRunner
from tinymlaas.store import Store


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.db_path, settings.artifacts_dir)
        store.fail_unfinished_jobs("the service restarted while the job ran")
        runner = JobRunner(store, settings.build.concurrency)
        app.state.settings, app.state.store, app.state.runner = settings, store, runner
        try:
            yield
        finally:
            await runner.drain()
            store.close()

    app = FastAPI(title="TinyMLaaS", version=__version__, lifespan=lifespan,
                  description="Compile, build, deploy and run ML models on microcontrollers.")
    handlers.install(app)
    for r in (catalog.router, models.router, builds.router, jobs.router, artifacts.router):
        app.include_router(r)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
