from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from errors import UserError
from inference import deployment
from inference.models import InferenceServer
from models_registry.models import Deployment, FineTunedModel


class Command(BaseCommand):
    help = ("Deploy fine-tuned models on the inference servers serving their base model, and print each "
            "deployment's state. Without names: first reconcile every server's deployments with what it "
            "serves, then deploy every model that is not ready on each of its servers.")

    def add_arguments(self, parser):
        parser.add_argument("models", nargs="*", metavar="MODEL", help="fully qualified name, e.g. DB.SCHEMA.MODEL")

    def handle(self, *args, models, **opts):
        if models:
            chosen = [self.find(name) for name in models]
        else:
            for server in InferenceServer.objects.all():
                try:
                    deployment.refresh(server)
                except OSError as exc:
                    self.stderr.write(f"{server.name}: {deployment.unreachable(server, exc)}")
            chosen = [m for m in FineTunedModel.objects.select_related("schema__database")
                      if self.needs_deploying(m)]
        failed = 0
        redeployed_tgi: set[int] = set()  # TGI servers restarted in this run: one restart loads all their adapters
        for model in chosen:
            if not models and self.deployed_along(model, redeployed_tgi):
                deployments = list(Deployment.objects.filter(model=model).select_related("server"))
            else:
                deployments = deployment.deploy(model)
            redeployed_tgi |= {row.server_id for row in deployments
                               if row.server.backend == InferenceServer.Backend.TGI}
            if not deployments:
                self.stdout.write(f"{model.qualified_name}: no inference server serves base model "
                                  f"'{model.base_model}' (python manage.py serve --base-model {model.base_model})")
            for row in deployments:
                failed += row.state != Deployment.State.READY
                self.stdout.write(f"{model.qualified_name} on {row.server.name}: {row.label}")
        if failed:
            raise CommandError(f"{failed} deployment{'s' if failed != 1 else ''} not ready.")

    @staticmethod
    def deployed_along(model: FineTunedModel, redeployed_tgi: set[int]) -> bool:
        """Whether an earlier model's TGI restart in this run already settled this one: every server where it
        is not ready is a TGI server restarted since (restarting it again would change nothing)."""
        states = dict(Deployment.objects.filter(model=model).values_list("server_id", "state"))
        waiting = [s for s in deployment.servers_for(model) if states.get(s.pk) != Deployment.State.READY]
        return all(s.backend == InferenceServer.Backend.TGI and s.pk in redeployed_tgi for s in waiting)

    @staticmethod
    def needs_deploying(model: FineTunedModel) -> bool:
        states = dict(Deployment.objects.filter(model=model).values_list("server_id", "state"))
        return any(states.get(server.pk) != Deployment.State.READY for server in deployment.servers_for(model))

    @staticmethod
    def find(name: str) -> FineTunedModel:
        from models_registry import registry

        try:
            return registry.resolve(name, None, None)
        except UserError as exc:
            raise CommandError(exc.message) from exc
