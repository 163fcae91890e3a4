from recs.tasks.attribution import store_served_answers
from recs.tasks.ingest import run_import_job

__all__ = ["run_import_job", "store_served_answers"]
