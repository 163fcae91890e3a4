"""Bulk back-fill: upload an NDJSON or CSV file (streamed to disk), then follow the job's progress.

recs/ingest/import_jobs.store_upload reserves the job (concurrent imports and stored bytes per shop) before a
byte is written and streams the body to its file; a refused upload writes nothing. The dashboard's Imports
page uploads through the same function."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from core.problems import PayloadTooLarge
from recs.api.quota import EventsQuota
from recs.api.serializers import ImportJobSerializer
from recs.ingest import import_jobs
from recs.models import ImportJob
from recs.tasks.ingest import enqueue_import
from tenants.auth import HasTenantScope
from tenants.viewsets import TenantViewSet

_FORMATS = {"application/x-ndjson": "ndjson", "application/ndjson": "ndjson", "text/csv": "csv"}


class TooManyImports(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_many_imports"


class StreamParser(BaseParser):
    """Leaves the body unread so the view can stream it to disk (it may be gigabytes)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream


class ImportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    model = ImportJob
    serializer_class = ImportJobSerializer
    required_scope = "ingest"
    permission_classes = [HasTenantScope, EventsQuota]
    parser_classes = [StreamParser]

    @extend_schema(
        parameters=[OpenApiParameter("kind", enum=ImportJob.Kind.values, required=True)],
        request={"application/x-ndjson": bytes, "text/csv": bytes},
        responses={202: ImportJobSerializer},
    )
    def create(self, request):
        """Upload a file as the raw body (Content-Type application/x-ndjson or text/csv, UTF-8)."""
        kind = request.query_params.get("kind")
        if kind not in ImportJob.Kind.values:
            raise ValidationError({"kind": [f"Must be one of {ImportJob.Kind.values}."]})
        content_type, _, params = (request.content_type or "").partition(";")
        fmt = _FORMATS.get(content_type.strip().lower())
        if fmt is None:
            raise ValidationError({"content_type": [f"Send one of {sorted(_FORMATS)}."]})
        charsets = [
            value.strip().strip('"').lower()
            for name, _, value in (param.partition("=") for param in params.split(";"))
            if name.strip().lower() == "charset"
        ]
        if any(charset not in ("utf-8", "utf8") for charset in charsets):
            raise ValidationError({"content_type": ["Files must be UTF-8."]})
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        # The raw stream (None for an empty body), not request.data: nothing may read the file into memory.
        stream = request.stream
        if stream is None or declared <= 0:
            raise ValidationError({"file": ["The upload is empty: send the file as the body, with a Content-Length."]})
        try:
            job = import_jobs.store_upload(self.tenant_id, kind, fmt, stream, declared)
        except import_jobs.TooManyImports as exc:
            raise TooManyImports(str(exc)) from None
        except (import_jobs.UploadQuotaExceeded, import_jobs.UploadTooLarge) as exc:
            raise PayloadTooLarge(str(exc)) from None
        except import_jobs.EmptyUpload as exc:
            raise ValidationError({"file": [str(exc)]}) from None
        enqueue_import(job)
        job.refresh_from_db()
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)
