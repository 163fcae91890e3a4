"""Shop platform integrations: Shopify and WooCommerce webhooks feeding the catalog and events.

Flow: views.py verifies a delivery (HMAC of the raw body with the connection's secret), records it
once (deliveries.py) and queues it; the `webhooks` Celery task (recs/integrations/tasks.py) runs
processing.py, which maps the payload through the platform module (shopify.py, woocommerce.py) into the
ordinary ingestion functions (recs/ingest) inside the tenant's context. compliance.py answers data
subject requests (export, erasure) and writes the audit log.
"""
