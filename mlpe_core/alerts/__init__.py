"""Alerts: rules in YAML (``config``), what they find in the store's frames (``evaluate``, pure: no store, no
network) and how each alert reaches its team (``channels``: JSON webhooks in Slack- and Teams-compatible shapes,
e-mail over SMTP). The desk records alerts and deliveries through ``store.alerts``.
"""

from .channels import backoff_s, email_message, send_email, send_webhook, webhook_payload
from .config import AlertConfig, load_alert_config
from .evaluate import RULE_KINDS, evaluate, route

__all__ = ["AlertConfig", "backoff_s", "email_message", "evaluate", "load_alert_config", "route", "RULE_KINDS",
           "send_email", "send_webhook", "webhook_payload"]
