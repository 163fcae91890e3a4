from django.core.management.base import BaseCommand, CommandError

from tenants.api_keys import create_api_key
from tenants.services import SignupError, sign_up_tenant


class Command(BaseCommand):
    help = "Sign up a shop (tenant) with its owner, and optionally print a first API key."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug")
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password")
        parser.add_argument("--with-key", action="store_true", help="create an admin API key and print it once")

    def handle(self, *args, **opts):
        try:
            tenant = sign_up_tenant(
                name=opts["name"], slug=opts["slug"], owner_email=opts["owner_email"],
                owner_password=opts["owner_password"],
            )
        except SignupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"tenant {tenant.slug} (id {tenant.pk}) created, owner {opts['owner_email']}")
        if opts["with_key"]:
            _, raw = create_api_key(tenant, name="first key", scopes=["admin"])
            self.stdout.write(f"API key (shown once): {raw}")
