"""Bulk back-fill: upload an NDJSON or CSV file (streamed to disk), then follow the job's progress."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from recs.api.base import TenantViewSet
from recs.api.problems import PayloadTooLarge
from recs.api.serializers import ImportJobSerializer
from recs.ingest.imports import new_upload_path
from recs.models import ImportJob
from recs.tasks.ingest import enqueue_import

_BLOCK = 1 << 20
_FORMATS = {"application/x-ndjson": "ndjson", "application/ndjson": "ndjson", "text/csv": "csv"}


class StreamParser(BaseParser):
    """Leaves the body unread so the view can stream it to disk (it may be gigabytes)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream


class ImportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    model = ImportJob
    serializer_class = ImportJobSerializer
    required_scope = "ingest"
    parser_classes = [StreamParser]

    @extend_schema(
        parameters=[OpenApiParameter("kind", enum=ImportJob.Kind.values, required=True)],
        request={"application/x-ndjson": bytes, "text/csv": bytes},
        responses={202: ImportJobSerializer},
    )
    def create(self, request):
        """Upload a file as the raw body (Content-Type application/x-ndjson or text/csv)."""
        kind = request.query_params.get("kind")
        if kind not in ImportJob.Kind.values:
            raise ValidationError({"kind": [f"Must be one of {ImportJob.Kind.values}."]})
        content_type = request.content_type.split(";")[0].strip().lower()
        fmt = _FORMATS.get(content_type)
        if fmt is None:
            raise ValidationError({"content_type": [f"Send one of {sorted(_FORMATS)}."]})
        limit = settings.RECSVC_MAX_IMPORT_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise PayloadTooLarge(f"Imports are limited to {limit} bytes.")
        path = new_upload_path(self.tenant_id, fmt)
        size = 0
        stream = request.data
        try:
            with open(path, "wb") as out:
                while block := stream.read(_BLOCK):
                    size += len(block)
                    if size > limit:
                        raise PayloadTooLarge(f"Imports are limited to {limit} bytes.")
                    out.write(block)
        except BaseException:
            os.remove(path)
            raise
        if size == 0:
            os.remove(path)
            raise ValidationError({"file": ["The upload is empty."]})
        with transaction.atomic():
            job = ImportJob.objects.create(
                tenant_id=self.tenant_id, kind=kind, format=fmt, file_path=str(path), size_bytes=size
            )
            enqueue_import(job)
        job.refresh_from_db()
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)
