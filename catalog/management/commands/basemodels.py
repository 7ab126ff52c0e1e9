from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog import base_models
from catalog.models import BaseModel
from errors import UserError


class Command(BaseCommand):
    help = ("List the base model catalog, install a base model's weights, import a local checkpoint, or "
            "enable or disable a base model.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action")
        sub.add_parser("list", help="list base models and whether their weights are installed")
        install = sub.add_parser("install", help="install a catalogued base model's weights")
        install.add_argument("name")
        install.add_argument("--if-missing", action="store_true", help="do nothing when already installed")
        for action, says in (("enable", "answer COMPLETE and FINETUNE again"),
                             ("disable", "refuse COMPLETE on it and its fine-tuned models, and FINETUNE")):
            sub.add_parser(action, help=f"{action} a base model: {says}").add_argument("name")
        imp = sub.add_parser("import", help="catalog and copy in a local Hugging Face checkpoint")
        imp.add_argument("name")
        imp.add_argument("--from", dest="source", required=True, type=Path)
        imp.add_argument("--context-window", type=int, default=2048)
        imp.add_argument("--max-prompt-tokens", type=int, default=1536)
        imp.add_argument("--max-completion-tokens", type=int, default=512)
        imp.add_argument("--training-data-limit-mb", type=int, default=100)
        imp.add_argument("--learning-rate", type=float, default=2e-4)
        imp.add_argument("--description", default="")

    def handle(self, *args, action=None, **opts):
        try:
            if action == "install":
                self.install(opts["name"], opts["if_missing"])
            elif action == "import":
                self.import_local(opts)
            elif action in ("enable", "disable"):
                self.set_enabled(opts["name"], action == "enable")
            else:
                self.list()
        except UserError as exc:
            raise CommandError(exc.message) from exc

    def list(self) -> None:
        rows = [("NAME", "INSTALLED", "CONTEXT", "PROMPT", "COMPLETION", "DATA LIMIT")]
        for base in BaseModel.objects.all():
            rows.append((
                base.name,
                "yes" if base.is_installed else "no",
                str(base.context_window),
                str(base.max_prompt_tokens),
                str(base.max_completion_tokens),
                f"{base.training_data_limit_bytes // (1024 * 1024)} MB",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        missing = [b.name for b in BaseModel.objects.all() if not b.is_installed]
        if missing:
            self.stdout.write(f"\nNot installed: {', '.join(missing)}. "
                              "Install one with: python manage.py basemodels install NAME")

    def install(self, name: str, if_missing: bool) -> None:
        base = BaseModel.objects.filter(name=name.lower()).first()
        if base is None:
            raise CommandError(f"Unknown base model '{name}'. Run `python manage.py basemodels list`.")
        if if_missing and base.is_installed:
            self.stdout.write(f"{base.name} is already installed at {base.weights_dir}")
            return
        self.stdout.write(f"Installing {base.name} into {base.weights_dir} …")
        path = base_models.install(base)
        self.stdout.write(self.style.SUCCESS(f"Installed {base.name} at {path}"))

    def set_enabled(self, name: str, enabled: bool) -> None:
        if not BaseModel.objects.filter(name=name.lower()).update(enabled=enabled):
            raise CommandError(f"Unknown base model '{name}'. Run `python manage.py basemodels list`.")
        self.stdout.write(f"{name.lower()} is {'enabled' if enabled else 'disabled'}.")

    def import_local(self, opts) -> None:
        name = opts["name"].lower()
        base, _ = BaseModel.objects.update_or_create(
            name=name,
            defaults={
                "context_window": opts["context_window"],
                "max_prompt_tokens": opts["max_prompt_tokens"],
                "max_completion_tokens": opts["max_completion_tokens"],
                "training_data_limit_bytes": opts["training_data_limit_mb"] * 1024 * 1024,
                "learning_rate": opts["learning_rate"],
                "description": opts["description"] or f"Imported from {opts['source']}",
            },
        )
        path = base_models.import_local(base, opts["source"].resolve())
        self.stdout.write(self.style.SUCCESS(f"Imported {base.name} at {path}"))
