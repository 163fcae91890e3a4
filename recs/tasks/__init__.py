from recs.tasks.ingest import run_import_job
from recs.tasks.integrations import process_webhook_delivery

__all__ = ["process_webhook_delivery", "run_import_job"]
