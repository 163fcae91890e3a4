from recs.models.catalog import Customer, CustomerVersion, Product, ProductVersion
from recs.models.events import BUILTIN_EVENT_WEIGHTS, Event, EventType
from recs.models.imports import ImportJob

__all__ = [
    "BUILTIN_EVENT_WEIGHTS",
    "Customer",
    "CustomerVersion",
    "Event",
    "EventType",
    "ImportJob",
    "Product",
    "ProductVersion",
]
