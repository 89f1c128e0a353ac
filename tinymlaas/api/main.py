"""App factory: state is made in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi

from tinymlaas import __version__
from tinymlaas.api import handlers
from tinymlaas.api.routes import (
    artifacts,
    bridges,
    builds,
    catalog,
    credentials,
    deployments,
    devices,
    groups,
    jobs,
    models,
    rollouts,
    toolchains,
    users,
)
from tinymlaas.config import Settings
from tinymlaas.jobs import JobRunner
from tinymlaas.plugins.registry import orchestrator_plugin
from tinymlaas.services.accounts import first_admin
from tinymlaas.services.registry import DeviceRegistry
from tinymlaas.services.rollouts import RolloutEngine
from tinymlaas.store import Store


def create_app(settings: Settings) -> FastAPI:
    orchestrator_cls = orchestrator_plugin(settings.orchestrator)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.db_url, settings.artifacts_dir)
        first_admin(store, settings.data_dir)
        store.fail_unfinished_jobs("the service restarted while the job ran")
        runner = JobRunner(store, settings.build.concurrency, settings.deploy_concurrency)
        cls = orchestrator_cls
        orchestrator = cls(settings.plugin_options(cls.name, cls.Options))
        registry = DeviceRegistry(store, orchestrator, settings.devices, settings.targets_dir)
        await registry.start()  # listens before the orchestrator lets the first device in
        await orchestrator.start(settings.data_dir)
        engine = RolloutEngine(store, orchestrator, registry, settings)
        await engine.start()
        app.state.settings, app.state.store, app.state.runner = settings, store, runner
        app.state.orchestrator, app.state.registry, app.state.rollouts = orchestrator, registry, engine
        try:
            yield
        finally:
            await engine.stop()
            await runner.drain()
            await orchestrator.stop()
            await registry.stop()
            store.close()

    app = FastAPI(title="TinyMLaaS", version=__version__, lifespan=lifespan,
                  description="Compile, build, deploy and run ML models on microcontrollers.")
    handlers.install(app)
    for r in (catalog.router, models.router, builds.router, jobs.router, artifacts.router,
              devices.server_router, devices.router, credentials.router, deployments.router, users.router,
              bridges.router, groups.router, rollouts.router, toolchains.router):
        app.include_router(r)
    for r in orchestrator_cls.routes():  # what the devices of this protocol call, if anything
        app.include_router(r)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with error answers documented as problem+json only (FastAPI adds JSON too)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if operation.get("security"):  # a user route: who is calling, and may they
                    operation["responses"].update(jsonable_encoder(
                        {str(c): {k: v for k, v in r.items() if k != "model"}
                         for c, r in handlers.problems(401, 403).items()}))
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if code[0] in "45" and handlers.PROBLEM in content:
                        content.pop("application/json", None)
        app.openapi_schema = schema
    return app.openapi_schema
