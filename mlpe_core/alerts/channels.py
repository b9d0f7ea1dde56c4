"""How an alert reaches people beyond the app's inbox: a JSON webhook or an e-mail.

Webhook payloads always carry a plain ``text`` line, which both Slack's and Microsoft Teams' incoming webhooks
show as the message; ``slack`` adds Block Kit blocks, ``teams`` sends a MessageCard, ``json`` (generic) adds the
alert's fields under ``alert`` for any other system. E-mail goes over SMTP (``MLPE_SMTP_*``). Each call either
succeeds or raises with the reason; retrying with :func:`backoff_s` and recording every attempt is the desk's
job, so a failure is never silent.
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage

SEVERITY_COLOUR = {"high": "C82323", "medium": "F08C00", "info": "3C6EAF"}


def backoff_s(attempt: int) -> float:
    """Wait before try ``attempt + 1``: 30 s, 1, 2, 4 ... minutes, at most an hour."""
    return float(min(3600, 30 * 2 ** max(attempt - 1, 0)))


def _link(alert: dict, app_url: str | None) -> str | None:
    if not app_url:
        return None
    base = app_url.rstrip("/")
    return f"{base}/leak?leak={alert['leak_id']}" if alert.get("leak_id") else f"{base}/alerts"


def text_line(alert: dict) -> str:
    return f"[MLPE {str(alert.get('severity', 'high')).upper()}] {alert['title']} (team {alert.get('team', '-')})"


def webhook_payload(alert: dict, fmt: str = "json", app_url: str | None = None) -> dict:
    """The JSON body for one alert in the webhook's format."""
    text = text_line(alert)
    link = _link(alert, app_url)
    if link:
        text += f" {link}"
    if fmt == "slack":
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{alert['title']}*"}},
                  {"type": "context", "elements": [{"type": "mrkdwn", "text":
                   f"rule `{alert['rule']}` · team {alert.get('team', '-')} · alert {alert.get('id', '-')}"}]}]
        if link:
            blocks.append({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text",
                                                                                         "text": "Open in MLPE"},
                                                              "url": link}]})
        return {"text": text, "blocks": blocks}
    if fmt == "teams":
        card = {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": alert["title"],
                "themeColor": SEVERITY_COLOUR.get(str(alert.get("severity")), "3C6EAF"), "title": alert["title"],
                "text": text, "sections": [{"facts": [{"name": k, "value": str(alert.get(k) or "-")}
                                                      for k in ("rule", "team", "leak_id", "asset_id", "operator")]}]}
        if link:
            card["potentialAction"] = [{"@type": "OpenUri", "name": "Open in MLPE",
                                        "targets": [{"os": "default", "uri": link}]}]
        return card
    keep = ("id", "key", "rule", "kind", "severity", "title", "leak_id", "asset_id", "operator", "asset_type", "team",
            "event_at", "created_at", "detail")
    return {"text": text, "alert": {k: alert.get(k) for k in keep}, "link": link}


def send_webhook(url: str, payload: dict, timeout_s: float = 10.0) -> int:
    """POST ``payload`` as JSON; the HTTP status on a 2xx, else raises ``RuntimeError`` with the reason."""
    req = urllib.request.Request(url, data=json.dumps(payload, default=str).encode("utf-8"), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "mlpe-alerts/1"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - http(s) checked in config
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"webhook answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise RuntimeError(f"webhook unreachable: {getattr(exc, 'reason', exc)}") from None


def email_message(alert: dict, sender: str, to: list[str], app_url: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = text_line(alert)[:200]
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    lines = [alert["title"], "", f"rule: {alert['rule']} ({alert.get('kind', '')})", f"team: {alert.get('team')}"]
    for k in ("leak_id", "asset_id", "operator", "event_at"):
        if alert.get(k):
            lines.append(f"{k}: {alert[k]}")
    if alert.get("detail"):
        lines += ["", json.dumps(alert["detail"], indent=2, default=str)]
    link = _link(alert, app_url)
    if link:
        lines += ["", link]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def send_email(msg: EmailMessage, host: str | None, port: int = 25, *, user: str | None = None,
               password: str | None = None, starttls: bool = False, timeout_s: float = 10.0) -> None:
    """Send over SMTP; raises ``RuntimeError`` with the reason (no server configured, refused, timed out)."""
    if not host:
        raise RuntimeError("no SMTP server: set MLPE_SMTP_HOST (and MLPE_SMTP_PORT)")
    try:
        with smtplib.SMTP(host, port, timeout=timeout_s) as smtp:
            if starttls:
                smtp.starttls()
            if user:
                smtp.login(user, password or "")
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise RuntimeError(f"SMTP {host}:{port}: {exc}") from None
