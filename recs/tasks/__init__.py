from recs.tasks.ingest import run_import_job

__all__ = ["run_import_job"]
