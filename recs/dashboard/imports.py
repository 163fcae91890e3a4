"""The Imports page: the shop's import jobs, an upload form (owners), and each job's progress as JSON for the
page's script to follow.

An upload goes through recs.ingest.import_jobs.store_upload, as POST /v1/imports does: the same per-shop
limits, decided before the file is kept, and the same queued job. The form's file is capped while it
arrives (CappedUpload), so a file over RECSVC_MAX_IMPORT_BYTES is never spooled whole.
"""

from __future__ import annotations

from pathlib import PurePath

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from core.dashboard.pages import render_page
from recs.dashboard import queries
from recs.ingest import import_jobs
from recs.models import ImportJob
from recs.tasks.ingest import enqueue_import
from tenants.dashboard.shop import require_owner, shop_view

PAGE_SIZE = 25
# File name endings and the format they mean; the API takes the format from the Content-Type instead.
FORMATS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "ndjson", ".csv": "csv"}
# What a multipart body may hold besides the file (boundaries, headers, the other fields).
FORM_OVERHEAD = 64 * 1024
KIND_HELP = {
    ImportJob.Kind.EVENTS: "one event per line or row, as POST /v1/events takes it",
    ImportJob.Kind.PRODUCTS: "one product per line or row, as POST /v1/products takes it",
    ImportJob.Kind.CUSTOMERS: "one customer per line or row, as POST /v1/customers takes it",
}


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label="What the file holds", choices=ImportJob.Kind.choices)
    file = forms.FileField(
        label="File", allow_empty_file=True,  # empty is import_jobs' call, as for the API
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(FORMATS)}),
        error_messages={"required": "Choose a file to upload."},
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        suffix = PurePath(upload.name or "").suffix.lower()
        if suffix not in FORMATS:
            raise forms.ValidationError(
                "Name the file .csv (CSV with a header row) or .ndjson (one JSON object per line), "
                f"not {suffix or 'no ending'}."
            )
        upload.import_format = FORMATS[suffix]
        return upload


class CappedUpload(FileUploadHandler):
    """First of the request's upload handlers: stops reading a file past `limit` bytes (the rest of the body
    is read and dropped, so the browser still gets the answer)."""

    def __init__(self, limit: int, request=None):
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int):
        return None  # the next handler keeps the file


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def job_state(job: ImportJob) -> dict:
    """What the page shows of a job while it runs (the fields of GET /v1/imports/{id} it needs)."""
    return {
        "id": job.pk, "status": job.status, "status_label": job.get_status_display(),
        "progress": round(job.progress, 4), "rows_ok": job.rows_ok, "rows_duplicate": job.rows_duplicate,
        "rows_failed": job.rows_failed, "error_message": job.error_message,
        "ended": job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED),
        "progress_url": reverse("dashboard:import_progress", args=[job.pk]),
    }


def _refused(request: HttpRequest, status: int, message: str, form: UploadForm | None = None) -> HttpResponse:
    if _wants_json(request):
        errors = form.errors.get_json_data() if form is not None and form.errors else {}
        return JsonResponse({"error": message, "errors": errors}, status=status)
    if form is not None and form.errors:
        return _page(request, form, status=status)
    messages.error(request, message)
    return redirect("dashboard:imports")


def _page(request: HttpRequest, form: UploadForm | None = None, status: int = 200) -> HttpResponse:
    tenant_id = request.shop.tenant.pk
    page = Paginator(queries.import_jobs(tenant_id), PAGE_SIZE).get_page(request.GET.get("page"))
    for job in page:
        job.progress_url = reverse("dashboard:import_progress", args=[job.pk])
    response = render_page(request, "dashboard/imports.html", "imports", {
        "page": page, "query": "", "form": form or UploadForm(),
        "max_bytes": filesizeformat(settings.RECSVC_MAX_IMPORT_BYTES), "kind_help": KIND_HELP.items(),
    })
    response.status_code = status
    return response


@shop_view
@require_GET
def imports_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


# The upload handlers must be in place before anything reads the body, and the CSRF check reads it: the
# check runs inside, once the cap is set (Django's documented way, "Modifying upload handlers on the fly").
@csrf_exempt
@shop_view
@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    require_owner(request)  # before a byte of the body is read
    limit = settings.RECSVC_MAX_IMPORT_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit + FORM_OVERHEAD:
        return _refused(request, 413, f"Imports are limited to {filesizeformat(limit)}.")
    cap = CappedUpload(limit, request)
    request.upload_handlers.insert(0, cap)
    return _store(request, cap)


@csrf_protect
def _store(request: HttpRequest, cap: CappedUpload) -> HttpResponse:
    files = request.FILES  # reads the body through the cap (if the CSRF check has not already)
    if cap.exceeded:
        return _refused(request, 413, f"Imports are limited to {filesizeformat(cap.limit)}.")
    form = UploadForm(request.POST, files)
    if not form.is_valid():
        return _refused(request, 400, "The file was not uploaded: see the form.", form)
    upload = form.cleaned_data["file"]
    kind = form.cleaned_data["kind"]
    try:
        with upload.open("rb") as stream:
            job = import_jobs.store_upload(request.shop.tenant.pk, kind, upload.import_format, stream, upload.size)
    except import_jobs.TooManyImports as exc:
        return _refused(request, 429, str(exc))
    except (import_jobs.UploadQuotaExceeded, import_jobs.UploadTooLarge) as exc:
        return _refused(request, 413, str(exc))
    except import_jobs.EmptyUpload as exc:
        return _refused(request, 400, f"{upload.name}: {exc}")
    enqueue_import(job)
    if _wants_json(request):
        job.refresh_from_db()
        return JsonResponse(job_state(job), status=202)
    messages.success(request, f"{upload.name} is uploaded: import #{job.pk} of {job.get_kind_display().lower()} "
                              "is queued and shows its progress below.")
    return redirect("dashboard:imports")


@shop_view
@require_GET
def progress(request: HttpRequest, pk: int) -> JsonResponse:
    job = ImportJob.objects.for_tenant(request.shop.tenant.pk).filter(pk=pk).first()
    if job is None:
        raise Http404("No such import.")
    return JsonResponse(job_state(job))
