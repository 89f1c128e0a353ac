"""App factory: state is made in the lifespan, never at import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi

from tinymlaas import __version__, web
from tinymlaas.api import handlers, routing
from tinymlaas.api.routes import (
    artifacts,
    bridges,
    builds,
    catalog,
    cost,
    credentials,
    datasets,
    deployments,
    devices,
    dryruns,
    evaluations,
    groups,
    hybrid,
    jobs,
    models,
    pipelines,
    profiles,
    rollouts,
    telemetry,
    toolchains,
    trainings,
    users,
)
from tinymlaas.config import Settings
from tinymlaas.jobs import JobRunner
from tinymlaas.plugins.registry import orchestrator_plugin
from tinymlaas.services.accounts import first_admin
from tinymlaas.services.cluster import Membership
from tinymlaas.services.hybrid import Cloud
from tinymlaas.services.recovery import recover
from tinymlaas.services.registry import DeviceRegistry
from tinymlaas.services.rollouts import RolloutEngine
from tinymlaas.services.telemetry import Sampler
from tinymlaas.signing import Signer
from tinymlaas.store import Store


def make_runner(store: Store, settings: Settings, owner: str) -> JobRunner:
    """In this process (the embedded default), or on workers when a broker is set."""
    common: dict[str, Any] = {"concurrency": settings.build.concurrency,
                              "io_concurrency": settings.deploy_concurrency, "owner": owner,
                              "lease_s": settings.cluster.lease_s}
    if settings.cluster.broker_url:
        from tinymlaas.distributed import BrokerRunner

        return BrokerRunner(store, settings, settings.cluster.broker_url, **common)
    return JobRunner(store, settings=settings, **common)


def create_app(settings: Settings, *, announce_admin: bool = True) -> FastAPI:
    """The service; ``announce_admin``: print a new service's first admin (people run it), or only
    keep it in its file (programs that start a private service read it there)."""
    orchestrator_cls = orchestrator_plugin(settings.orchestrator)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.db_url, settings.artifacts_dir)
        first_admin(store, settings.data_dir, announce=announce_admin)
        cluster = settings.cluster
        shared = cluster.instance is not None or cluster.broker_url is not None
        owner = cluster.instance or "local"
        await asyncio.to_thread(recover, store, settings.data_dir, owner if shared else None)
        runner = make_runner(store, settings, owner)
        cls = orchestrator_cls
        orchestrator = cls(settings.plugin_options(cls.name, cls.Options))
        app.state.signer = Signer.load_or_create(settings.data_dir)
        registry = DeviceRegistry(store, orchestrator, settings.devices, settings.targets_dir,
                                  app.state.signer, instance=cluster.instance)
        await registry.start()  # listens before the orchestrator lets the first device in
        await orchestrator.start(settings.data_dir)
        app.state.membership = None
        if cluster.instance is not None:
            app.state.membership = Membership(
                store, orchestrator, cluster.instance,
                cluster.api_url or f"http://{settings.api_host}:{settings.api_port}", cluster.lease_s / 3)
            await app.state.membership.start()
        sampler = Sampler(store, orchestrator, settings.telemetry_interval_s)
        sampler.start()
        app.state.cloud = Cloud(store)
        orchestrator.escalation = app.state.cloud.escalate  # devices' uncertain inferences
        engine = RolloutEngine(store, orchestrator, registry, settings, app.state.signer)
        await engine.start()
        app.state.settings, app.state.store, app.state.runner = settings, store, runner
        app.state.orchestrator, app.state.registry, app.state.rollouts = orchestrator, registry, engine
        try:
            yield
        finally:
            await engine.stop()
            if app.state.membership is not None:
                await app.state.membership.stop()
            await sampler.stop()
            await runner.drain()
            await orchestrator.stop()
            await registry.stop()
            app.state.cloud.flush()
            store.close()

    # The docs pages are the web app's: their scripts are served locally, not from a CDN.
    app = FastAPI(title="TinyMLaaS", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Compile, build, deploy and run ML models on microcontrollers.")
    handlers.install(app, settings.max_body_bytes)
    routing.install(app)  # requests about another instance's devices go to it
    for r in (catalog.router, models.router, builds.router, jobs.router, artifacts.router,
              devices.server_router, devices.router, credentials.router, deployments.router, users.router,
              datasets.router, trainings.router, evaluations.router, profiles.router,
              telemetry.router, dryruns.router, cost.router, hybrid.router,
              bridges.router, groups.router, rollouts.router, toolchains.router, pipelines.router):
        app.include_router(r)
    for r in orchestrator_cls.routes():  # what the devices of this protocol call, if anything
        app.include_router(r)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    web.install(app)  # the pages under /ui, /static, /docs and /redoc
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
