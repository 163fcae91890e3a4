from recs.models.attribution import ServedAnswer
from recs.models.catalog import Customer, CustomerVersion, Product, ProductVersion
from recs.models.events import BUILTIN_EVENT_WEIGHTS, Event, EventType
from recs.models.imports import ImportJob
from recs.models.integrations import AuditLog, DataExport, IntegrationConnection, WebhookDelivery
from recs.models.rules import Boost, Promotion, RecommendationSettings, Rule

__all__ = [
    "BUILTIN_EVENT_WEIGHTS",
    "AuditLog",
    "Boost",
    "Customer",
    "CustomerVersion",
    "DataExport",
    "Event",
    "EventType",
    "ImportJob",
    "IntegrationConnection",
    "Product",
    "ProductVersion",
    "Promotion",
    "RecommendationSettings",
    "Rule",
    "ServedAnswer",
    "WebhookDelivery",
]
