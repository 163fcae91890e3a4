from recs.models.catalog import Customer, CustomerVersion, Product, ProductVersion
from recs.models.events import BUILTIN_EVENT_WEIGHTS, Event, EventType
from recs.models.imports import ImportJob
from recs.models.integrations import AuditLog, DataExport, IntegrationConnection, WebhookDelivery

__all__ = [
    "BUILTIN_EVENT_WEIGHTS",
    "AuditLog",
    "Customer",
    "CustomerVersion",
    "DataExport",
    "Event",
    "EventType",
    "ImportJob",
    "IntegrationConnection",
    "Product",
    "ProductVersion",
    "WebhookDelivery",
]
